from __future__ import annotations

import pytest

from settings_app.diagnosis import ENTERPRISE_OBJECT_ID, diagnose
from settings_app.values import ConnectionSettings
from tests.unit.settings_values import CLIENT_ID, MAILBOX, connection_settings


def m365(**overrides) -> ConnectionSettings:
    return connection_settings(**{"protocol": "smtp_microsoft365", **overrides})


def fix_text(finding) -> str:
    return "\n".join(f"{fix.text}\n{fix.command}" for fix in finding.fixes)


class TestIdentityFindings:
    def test_it_says_the_secret_id_was_probably_pasted_for_7000215(self):
        finding = diagnose("token", "AADSTS7000215", "", m365())
        assert finding.code == "AADSTS7000215"
        assert "ID was pasted instead of its Value" in finding.causes[0]
        assert CLIENT_ID in fix_text(finding)
        assert finding.guide_step == "client-secret"

    def test_it_says_to_create_a_new_secret_when_expired(self):
        finding = diagnose("token", "AADSTS7000222", "", m365())
        assert "expired" in finding.title
        assert "create a new client secret" in fix_text(finding)

    def test_it_names_client_id_tenant_and_consent_for_700016(self):
        finding = diagnose("token", "AADSTS700016", "", m365())
        assert any("Client ID is wrong" in cause for cause in finding.causes)
        assert any("admin consent" in cause for cause in finding.causes)
        assert "contoso.onmicrosoft.com" in finding.explanation

    @pytest.mark.parametrize("code", ["AADSTS90002", "AADSTS900023"])
    def test_it_points_at_the_tenant_id(self, code):
        finding = diagnose("token", code, "", m365(tenant_id="contoso.example"))
        assert "tenant" in finding.title.lower()
        assert "Directory (tenant) ID" in fix_text(finding)

    @pytest.mark.parametrize("code", ["AADSTS1002012", "AADSTS70011", "AADSTS500011"])
    def test_it_blames_cloud_or_exchange_for_scope_errors(self, code):
        finding = diagnose("token", code, "", m365())
        assert "Microsoft cloud" in fix_text(finding)

    def test_it_recognises_an_identity_outage(self):
        finding = diagnose("token", "http-503", "", m365())
        assert "HTTP 503" in finding.explanation

    @pytest.mark.parametrize("code", ["dns", "refused", "timeout", "unreachable"])
    def test_it_recognises_an_unreachable_identity_service(self, code):
        assert "HTTPS" in diagnose("token", code, "", m365()).explanation

    def test_it_suggests_a_ca_bundle_for_tls_inspection(self):
        assert "MAILADMIN_CA_BUNDLE" in fix_text(diagnose("token", "tls-untrusted", "", m365()))

    def test_an_unknown_aadsts_code_still_gets_a_finding_with_the_reply(self):
        finding = diagnose("token", "AADSTS123", "invalid_request: something", m365())
        assert "something" in finding.explanation


class TestSmtpFindings:
    def test_535_5_7_3_lists_the_exchange_steps_in_order_with_values(self):
        finding = diagnose("auth", "535-5.7.3", "535 5.7.3 Authentication unsuccessful", m365())
        assert "New-ServicePrincipal" in finding.causes[0]
        assert "Enterprise" in finding.causes[1]
        assert "Add-MailboxPermission" in finding.causes[2]
        assert "SMTP.SendAsApp" in finding.causes[3]
        text = fix_text(finding)
        assert f"New-ServicePrincipal -AppId '{CLIENT_ID}' -ObjectId '{ENTERPRISE_OBJECT_ID}'" in text
        assert f"Add-MailboxPermission -Identity '{MAILBOX}' -User $sp.Identity -AccessRights FullAccess" in text

    def test_535_for_plain_smtp_blames_the_credentials(self):
        config = m365(protocol="smtp")
        assert "password" in diagnose("auth", "535-5.7.3", "", config).title

    def test_535_5_7_139_for_a_mailbox_gives_set_casmailbox_first(self):
        reply = (
            "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox. "
            "Visit https://aka.ms/smtp_auth_disabled for more information."
        )
        finding = diagnose("auth", "535-5.7.139", reply, m365())
        expected = f"Set-CASMailbox -Identity '{MAILBOX}' -SmtpClientAuthenticationDisabled $false"
        assert finding.fixes[0].command == expected
        assert finding.variant == "mailbox"

    def test_535_5_7_139_for_the_tenant_gives_set_transportconfig_first(self):
        reply = "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant."
        finding = diagnose("auth", "535-5.7.139", reply, m365())
        assert finding.fixes[0].command == "Set-TransportConfig -SmtpClientAuthenticationDisabled $false"

    def test_535_5_7_139_from_conditional_access_is_not_blamed_on_smtp_auth(self):
        reply = "535 5.7.139 Authentication unsuccessful, the request did not meet the criteria to be authenticated"
        assert diagnose("auth", "535-5.7.139", reply, m365()).variant == "policy"

    @pytest.mark.parametrize("code", ["554-5.2.252", "550-5.7.60", "554-5.2.0"])
    def test_send_as_denied_offers_add_recipientpermission_for_the_refused_sender(self, code):
        reply = f"{code[:3]} 5.2.252 SendAsDenied; {MAILBOX} not allowed to send as alice@contoso.com; STOREDRV"
        finding = diagnose("send", code, reply, m365())
        assert "Add-RecipientPermission -Identity 'alice@contoso.com'" in fix_text(finding)
        assert "Use user's email as sender" in fix_text(finding)

    def test_530_5_7_57_asks_for_authentication(self):
        assert "secure authentication" in fix_text(diagnose("send", "530-5.7.57", "", m365()))

    def test_421_is_transient(self):
        finding = diagnose("send", "421-4.4.1", "421 4.4.1 Connection timed out", m365())
        assert "Connection timed out" in finding.explanation

    @pytest.mark.parametrize(
        ("code", "words"),
        [
            ("dns", "cannot be resolved"),
            ("refused", "refused"),
            ("timeout", "did not answer"),
            ("disconnected", "closed"),
            ("starttls-unsupported", "STARTTLS"),
            ("tls-untrusted", "not trusted"),
            ("tls-hostname", "does not match"),
            ("xoauth2-unsupported", "XOAUTH2"),
        ],
    )
    def test_transport_failures_have_titles(self, code, words):
        assert words in diagnose("connect", code, "", m365()).title

    def test_powershell_values_are_quoted(self):
        finding = diagnose("auth", "535-5.7.139", "disabled for the Mailbox", m365(username="o'brien@contoso.com"))
        assert "-Identity 'o''brien@contoso.com'" in finding.fixes[0].command
