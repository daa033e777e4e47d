"""The connection test against the loopback fakes, with msal and smtplib unmodified."""

from __future__ import annotations

import time

import pytest

from settings_app.models import OutgoingEmailSettings
from settings_app.runner import run_connection_test
from settings_app.transports.smtp import STEPS

pytestmark = pytest.mark.django_db


def run(record: OutgoingEmailSettings, **kwargs):
    return run_connection_test(record.to_connection_settings(), **kwargs)


def statuses(result) -> dict[str, str]:
    return {step.name: step.status for step in result.steps}


def failed(result):
    step = result.failed_step
    assert step is not None, statuses(result)
    return step


def test_every_step_passes_and_the_message_arrives(m365_settings, m365_tenant, fake_identity, fake_smtp):
    result = run(m365_settings, test_recipient="someone@example.com")
    assert result.outcome == "success", [(s.name, s.code, s.detail) for s in result.steps]
    assert [step.name for step in result.steps] == list(STEPS)
    assert {name for name, status in statuses(result).items() if status != "ok"} == {"send_as"}
    assert result.steps[STEPS.index("auth")].reply.startswith("235 2.7.0")
    assert result.token_claims["appid"] == m365_tenant.client_id
    assert "SMTP.SendAsApp" in result.token_claims["roles"]
    assert result.token_claims["exp"].endswith("+00:00")
    # What the fakes received: a discovery GET, one token POST, one authenticated message.
    assert len(fake_identity.token_requests) == 1
    assert fake_identity.token_requests[0].form["scope"] == "https://outlook.office365.com/.default"
    assert fake_identity.token_requests[0].form["grant_type"] == "client_credentials"
    assert [message.rcpt_tos for message in fake_smtp.messages] == [("someone@example.com",)]
    assert fake_smtp.messages[0].authenticated_as == m365_tenant.mailbox
    assert fake_smtp.messages[0].message["From"] == m365_tenant.mailbox


def test_quit_is_sent_and_reported_without_waiting_for_the_221(m365_settings, fake_smtp):
    fake_smtp.delay_reply_to("QUIT", 5.0)
    started = time.monotonic()
    result = run(m365_settings)
    assert time.monotonic() - started < 2.0
    assert result.outcome == "success"
    quit_step = result.steps[STEPS.index("quit")]
    assert (quit_step.status, quit_step.reply) == ("ok", "QUIT sent")
    assert quit_step.elapsed_ms < 1000
    give_up = time.monotonic() + 5
    while fake_smtp.commands[-1:] != ["QUIT"] and time.monotonic() < give_up:
        time.sleep(0.01)
    assert fake_smtp.commands[-1:] == ["QUIT"]


def test_without_a_recipient_nothing_is_sent(m365_settings, fake_smtp):
    result = run(m365_settings)
    assert result.outcome == "success"
    assert statuses(result)["send"] == "skipped"
    assert fake_smtp.messages == []


def test_it_always_asks_for_a_fresh_token(m365_settings, fake_identity):
    run(m365_settings)
    run(m365_settings)
    assert len(fake_identity.token_requests) == 2


def test_a_wrong_secret_fails_at_token(m365_settings, fake_smtp):
    m365_settings.client_secret = "the-secret-id-not-the-value"
    m365_settings.save()
    result = run(m365_settings)
    step = failed(result)
    assert (step.name, step.code) == ("token", "AADSTS7000215")
    assert "client secret" in step.reply.lower()
    assert statuses(result)["auth"] == "skipped"
    assert fake_smtp.auth_attempts == []


def test_an_expired_secret_is_named(m365_settings, m365_tenant):
    m365_tenant.app.secret_expired = True
    step = failed(run(m365_settings))
    assert step.code == "AADSTS7000222"
    assert "expired" in step.finding.title


def test_an_unknown_client_id_is_named(m365_settings):
    m365_settings.client_id = "00000000-1111-2222-3333-444444444444"
    m365_settings.save()
    assert failed(run(m365_settings)).code == "AADSTS700016"


def test_an_unknown_tenant_fails_at_construction_with_its_aadsts_code(m365_settings, fake_identity):
    m365_settings.tenant_id = "fabrikam.onmicrosoft.com"
    m365_settings.save()
    step = failed(run(m365_settings))
    assert (step.name, step.code) == ("token", "AADSTS90002")
    assert fake_identity.token_requests == []


def test_a_token_without_the_exchange_role_warns_then_fails_at_auth(m365_settings, m365_tenant, fake_smtp):
    m365_tenant.app.roles = ()
    result = run(m365_settings)
    token_step = result.steps[STEPS.index("token")]
    assert token_step.status == "ok"
    assert any("SMTP.SendAsApp" in warning for warning in token_step.warnings)
    step = failed(result)
    assert (step.name, step.code) == ("auth", "535-5.7.3")


def test_a_rejected_token_fails_at_auth_with_535_5_7_3(m365_settings, m365_tenant, fake_smtp):
    fake_smtp.remove_service_principal(m365_tenant.client_id)
    step = failed(run(m365_settings))
    assert (step.name, step.code) == ("auth", "535-5.7.3")
    assert step.reply.startswith("535 5.7.3 Authentication unsuccessful")
    assert "New-ServicePrincipal" in " ".join(fix.command for fix in step.finding.fixes)
    assert fake_smtp.auth_attempts[-1].success is False


def test_disabled_smtp_auth_is_named_with_the_mailbox_command(m365_settings, m365_tenant, fake_smtp):
    fake_smtp.disable_smtp_auth(m365_tenant.mailbox)
    step = failed(run(m365_settings))
    assert step.code == "535-5.7.139"
    assert step.finding.fixes[0].command == (
        f"Set-CASMailbox -Identity '{m365_tenant.mailbox}' -SmtpClientAuthenticationDisabled $false"
    )


def test_a_sender_other_than_the_mailbox_is_refused_after_data(m365_settings, fake_smtp):
    m365_settings.sender_email = "ceo@contoso.com"
    m365_settings.save()
    step = failed(run(m365_settings, test_recipient="someone@example.com"))
    assert (step.name, step.code) == ("send", "554-5.2.252")
    assert "Add-RecipientPermission -Identity 'ceo@contoso.com'" in " ".join(f.command for f in step.finding.fixes)
    assert fake_smtp.messages == []


def test_no_starttls_is_named(m365_settings, fake_smtp):
    fake_smtp.no_starttls()
    step = failed(run(m365_settings))
    assert (step.name, step.code) == ("starttls", "starttls-unsupported")


def test_no_xoauth2_is_named(m365_settings, fake_smtp):
    fake_smtp.no_xoauth2()
    step = failed(run(m365_settings))
    assert (step.name, step.code) == ("auth", "xoauth2-unsupported")


def test_an_untrusted_smtp_certificate_is_named(m365_settings, settings, tmp_path):
    from tests.fakes import tls

    settings.MAILADMIN_CA_BUNDLE = str(tls.write_ca_bundle(tmp_path / "other.pem", tls.untrusted_ca()))
    step = failed(run(m365_settings))
    assert (step.name, step.code) == ("starttls", "tls-untrusted")


def test_a_refused_port_is_named(m365_settings, unused_port):
    m365_settings.port = unused_port
    m365_settings.save()
    step = failed(run(m365_settings))
    assert (step.name, step.code) == ("connect", "refused")


def test_a_silent_server_times_out_within_the_budget(m365_settings, silent_server):
    m365_settings.server, m365_settings.port = "127.0.0.1", silent_server.port
    m365_settings.save()
    started = time.monotonic()
    result = run(m365_settings, timeout=2)
    assert time.monotonic() - started < 3
    step = failed(result)
    assert (step.name, step.code) == ("connect", "timeout")


def test_a_stalled_identity_service_times_out_within_the_budget(m365_settings, fake_identity):
    fake_identity.stall(10)
    started = time.monotonic()
    step = failed(run(m365_settings, timeout=2))
    assert time.monotonic() - started < 3
    assert (step.name, step.code) == ("token", "timeout")


def test_an_identity_outage_is_named(m365_settings, fake_identity):
    fake_identity.respond_with_status(503)
    assert failed(run(m365_settings)).code == "http-503"


def test_an_unresolvable_server_fails_at_dns(m365_settings):
    m365_settings.server = "smtp.invalid"
    m365_settings.save()
    step = failed(run(m365_settings))
    assert (step.name, step.code) == ("dns", "dns")


def test_a_dropped_connection_is_named(m365_settings, fake_smtp):
    fake_smtp.drop_after("EHLO")
    step = failed(run(m365_settings))
    assert (step.name, step.code) == ("ehlo", "disconnected")


def test_plain_smtp_authenticates_with_a_password(db, on_fakes, fake_smtp):
    fake_smtp.add_user("app", "app-password")
    record = OutgoingEmailSettings.load()
    record.protocol, record.server, record.port = "smtp", fake_smtp.hostname, fake_smtp.port
    record.connection_security, record.use_secure_auth = "starttls", True
    record.username, record.password, record.sender_email = "app", "app-password", "app@example.com"
    record.save()
    result = run(record)
    assert result.outcome == "success", [(s.name, s.code) for s in result.steps]
    assert statuses(result)["token"] == "skipped"
    assert fake_smtp.auth_attempts[-1].success


def test_no_secret_or_token_appears_in_the_result(m365_settings, m365_tenant, fake_identity):
    result = run(m365_settings, test_recipient="someone@example.com")
    text = repr(result.as_dict())
    assert str(m365_tenant.client_secret) not in text
    assert "eyJ" not in text
