"""Every finding of the diagnosis, provoked for real against the loopback fakes."""

from __future__ import annotations

import pytest

from settings_app.models import OutgoingEmailSettings
from settings_app.runner import run_connection_test
from tests.fakes import tls
from tests.fakes.smtp import FakeExchange
from tests.integration.results import commands, failed_step

pytestmark = pytest.mark.django_db




@pytest.mark.parametrize(
    ("aadsts", "guide_step"),
    [
        ("AADSTS1002012", "api-permissions"),
        ("AADSTS70011", "api-permissions"),
        ("AADSTS500011", "api-permissions"),
        ("AADSTS7000218", "client-secret"),
    ],
)
def test_identity_errors_map_to_their_guide_step(m365_settings, fake_identity, aadsts, guide_step):
    fake_identity.fail_with(aadsts)
    step = failed_step(m365_settings)
    assert (step.name, step.code, step.finding.guide_step) == ("token", aadsts, guide_step)


def test_a_non_json_identity_answer_is_named(m365_settings, fake_identity):
    fake_identity.respond_with_non_json()
    step = failed_step(m365_settings)
    assert (step.name, step.code) == ("token", "invalid-response")
    assert "proxy" in step.finding.fixes[0].text.lower()


def test_a_malformed_tenant_reaches_entra_as_900023(m365_settings):
    m365_settings.tenant_id = "not_a_domain!"
    m365_settings.save()
    step = failed_step(m365_settings)
    assert (step.name, step.code) == ("token", "AADSTS900023")


def test_an_untrusted_identity_certificate_suggests_the_ca_bundle(m365_settings, settings):
    from tests.fakes.identity import FakeIdentity

    with FakeIdentity(server_cert=tls.untrusted_server_cert()) as intercepted:
        settings.MAILADMIN_AUTHORITY_HOST = intercepted.authority_host
        step = failed_step(m365_settings)
    assert (step.name, step.code) == ("token", "tls-untrusted")
    assert "MAILADMIN_CA_BUNDLE" in step.finding.fixes[0].text


def test_implicit_tls_on_a_starttls_port_is_named_as_a_mismatch(m365_settings):
    m365_settings.connection_security = "ssl_tls"
    m365_settings.save()
    step = failed_step(m365_settings)
    assert (step.name, step.code) == ("connect", "tls-failed")
    assert "587 = STARTTLS" in step.finding.fixes[0].text


def test_a_certificate_for_another_name_is_named(m365_settings, fake_identity):
    with FakeExchange(identity=fake_identity, server_cert=tls.wrong_host_cert()) as wrong_name:
        m365_settings.port = wrong_name.port
        m365_settings.save()
        step = failed_step(m365_settings)
    assert (step.name, step.code) == ("starttls", "tls-hostname")
    assert "smtp.office365.com" in step.finding.fixes[0].text


def test_smtp_auth_disabled_for_the_tenant_puts_set_transportconfig_first(m365_settings, fake_smtp):
    fake_smtp.disable_smtp_auth()
    step = failed_step(m365_settings)
    assert step.code == "535-5.7.139"
    assert step.finding.fixes[0].command == "Set-TransportConfig -SmtpClientAuthenticationDisabled $false"


def test_a_mailbox_without_fullaccess_fails_at_auth_with_the_fix(m365_settings, m365_tenant, fake_smtp):
    fake_smtp.revoke_mailbox_access(m365_tenant.client_id, m365_tenant.mailbox)
    step = failed_step(m365_settings)
    assert step.code == "535-5.7.3"
    assert f"Add-MailboxPermission -Identity '{m365_tenant.mailbox}'" in commands(step)


def test_sending_without_authentication_gets_530_5_7_57(db, on_fakes, fake_smtp):
    record = OutgoingEmailSettings.load()
    record.protocol, record.server, record.port = "smtp", fake_smtp.hostname, fake_smtp.port
    record.connection_security, record.use_secure_auth = "starttls", False
    record.username, record.sender_email = "", "app@example.com"
    record.save()
    step = failed_step(record, test_recipient="someone@example.com")
    assert (step.name, step.code) == ("send", "530-5.7.57")
    assert "secure authentication" in step.finding.fixes[0].text


def test_550_5_7_60_is_send_as_denied(m365_settings, fake_smtp):
    fake_smtp.reply_to("MESSAGE", "550 5.7.60 SMTP; Client does not have permissions to send as this sender")
    step = failed_step(m365_settings, test_recipient="someone@example.com")
    assert (step.name, step.code, step.finding.guide_step) == ("send", "550-5.7.60", "send-as")


def test_421_is_reported_as_transient(m365_settings, fake_smtp):
    fake_smtp.reply_to("MAIL", "421 4.4.1 Connection timed out. Total session duration: 00:05:00.7054661")
    step = failed_step(m365_settings, test_recipient="someone@example.com")
    assert (step.name, step.code) == ("send", "421-4.4.1")
    assert "Test again" in step.finding.fixes[0].text


class TestSendAsCheck:
    @pytest.fixture
    def user_sender(self, m365_settings):
        m365_settings.use_user_email_as_sender = True
        m365_settings.save()
        return m365_settings

    def test_it_sends_from_the_administrators_address_and_reports_send_as_denied(self, user_sender, fake_smtp):
        step = failed_step(user_sender, test_recipient="someone@example.com", send_as="alice@contoso.com")
        assert (step.name, step.code) == ("send_as", "554-5.2.252")
        assert "Add-RecipientPermission -Identity 'alice@contoso.com'" in commands(step)
        assert len(fake_smtp.messages) == 1
        assert fake_smtp.rejected_messages[-1].mail_from == "alice@contoso.com"

    def test_it_passes_when_send_as_is_granted(self, user_sender, m365_tenant, fake_smtp):
        fake_smtp.grant_send_as(m365_tenant.mailbox, "alice@contoso.com")
        result = run_connection_test(
            user_sender.to_connection_settings(), test_recipient="someone@example.com", send_as="alice@contoso.com"
        )
        assert result.outcome == "success"
        assert [message.message["From"] for message in fake_smtp.messages] == [m365_tenant.mailbox, "alice@contoso.com"]

    def test_it_is_skipped_when_the_option_is_off(self, m365_settings):
        result = run_connection_test(
            m365_settings.to_connection_settings(), test_recipient="someone@example.com", send_as="alice@contoso.com"
        )
        send_as = next(step for step in result.steps if step.name == "send_as")
        assert send_as.status == "skipped"


def test_a_national_cloud_asks_for_its_own_exchange_scope(m365_settings, fake_identity):
    fake_identity.allow_resource("https://outlook.office365.us")
    m365_settings.cloud = "usgov"
    m365_settings.save()
    result = run_connection_test(m365_settings.to_connection_settings())
    assert fake_identity.token_requests[-1].form["scope"] == "https://outlook.office365.us/.default"
    token = next(step for step in result.steps if step.name == "token")
    assert token.status == "ok"
    assert result.token_claims["aud"].startswith("https://outlook.office365.us")


def test_a_token_error_keeps_no_exception_context_holding_the_request(m365_tenant, ca_bundle_path):
    """The requests exception underneath carries the request body, and so the client secret."""
    from settings_app import oauth
    from settings_app.deadline import Deadline
    from settings_app.tls import trust_context
    from settings_app.values import ClientSecret
    from tests.fakes.identity import FakeIdentity

    intercepted = FakeIdentity(server_cert=tls.untrusted_server_cert())
    with intercepted, pytest.raises(oauth.TokenError) as caught:
        oauth.acquire_token(
            client_id=m365_tenant.client_id,
            tenant_id=m365_tenant.tenant_id,
            credential=ClientSecret(str(m365_tenant.client_secret)),
            authority_host=intercepted.authority_host,
            scope=m365_tenant.scope,
            deadline=Deadline(5),
            ssl_context=trust_context(str(ca_bundle_path)),
            ca_bundle=str(ca_bundle_path),
        )
    assert caught.value.code == "tls-untrusted"
    assert caught.value.__context__ is None and caught.value.__cause__ is None
