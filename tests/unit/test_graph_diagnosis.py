"""The Graph findings table, offline: codes to findings with the administrator's values."""

from __future__ import annotations

import pytest

from settings_app.diagnosis import diagnose
from settings_app.values import ConnectionSettings
from tests.unit.settings_values import CLIENT_ID, MAILBOX, connection_settings


def graph(**overrides) -> ConnectionSettings:
    return connection_settings(**{"protocol": "graph_microsoft365", "server": "", **overrides})


def commands(finding) -> str:
    return "\n".join(fix.command for fix in finding.fixes)


def test_the_token_step_is_still_read_by_entra_ids_table():
    assert diagnose("token", "AADSTS7000215", "", graph()).title == "The client secret is wrong"


@pytest.mark.parametrize(
    ("reply", "variant", "guide_step"),
    [
        ("403 ErrorAccessDenied: Access is denied. [token roles: none]", "consent", "graph-permission"),
        ("403 ErrorAccessDenied: Access is denied. [token roles: Mail.Send]", "scope", "graph-rbac"),
    ],
)
def test_access_denied_tells_missing_consent_from_a_mailbox_out_of_scope(reply, variant, guide_step):
    finding = diagnose("send", "ErrorAccessDenied", reply, graph())
    assert (finding.variant, finding.guide_step) == (variant, guide_step)
    assert CLIENT_ID in commands(finding)
    assert MAILBOX in commands(finding)


@pytest.mark.parametrize(
    ("cloud", "host"),
    [("global", "graph.microsoft.com"), ("usgov", "graph.microsoft.us"), ("china", "microsoftgraph.chinacloudapi.cn")],
)
def test_network_findings_name_the_clouds_graph_host(cloud, host):
    for code in ("dns", "refused", "timeout", "tls-untrusted"):
        finding = diagnose("send", code, "", graph(cloud=cloud))
        assert host in finding.explanation + " ".join(fix.text for fix in finding.fixes), code


def test_an_unknown_graph_code_gets_the_fallback_naming_it():
    finding = diagnose("send", "ErrorQuotaExceeded", "", graph())
    assert finding.title == "Microsoft Graph refused the request"
    assert "ErrorQuotaExceeded" in finding.explanation
