"""The email backend sends the application's mail with the saved settings, through the loopback fakes."""

from __future__ import annotations

import json
import smtplib
import time
from email.utils import getaddresses
from pathlib import Path

import pytest
from django.core.mail import EmailMessage, send_mail

from settings_app import crypto, token_cache
from settings_app.backends import OutgoingEmailBackend, OutgoingEmailError
from settings_app.mail import send_mail_as
from settings_app.models import OutgoingEmailSettings
from settings_app.runner import run_connection_test
from settings_app.tls import shared_trust
from settings_app.token_cache import RENEWAL_MARGIN
from tests.fakes.fixtures import make_client_secret
from tests.integration.processes import manage, project_environment

pytestmark = pytest.mark.django_db

PROJECT = Path(__file__).resolve().parents[2]
RECIPIENT = "someone@example.net"
USER_ADDRESS = "alice@contoso.com"
SESSION_LIMIT = "421 4.4.1 Connection timed out. Total session duration: 00:05:00.7054661"


@pytest.fixture
def outgoing(settings, tmp_path, m365_settings) -> OutgoingEmailSettings:
    """Saved Microsoft 365 settings pointing at the fakes; a token cache of the test's own."""
    settings.EMAIL_BACKEND = "settings_app.backends.OutgoingEmailBackend"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(tmp_path / "cache"),
        }
    }
    return m365_settings


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user(
        username="alice", email=USER_ADDRESS, first_name="Alice", last_name="Smith", password="pw-12345-xyz"
    )


def message(subject: str, from_email: str | None = None) -> EmailMessage:
    return EmailMessage(subject, "Body.", from_email, [RECIPIENT])


def addresses(received, header: str) -> list[str]:
    return [address for _, address in getaddresses(received.message.get_all(header, []))]


def subjects(fake_smtp) -> list[str]:
    return [received.subject for received in fake_smtp.messages]


def cache_key(saved: OutgoingEmailSettings) -> str:
    return saved.transport.token_provider(saved.to_connection_settings(), shared_trust()).cache_key


def stored_token_cache(key: str) -> str | None:
    return token_cache.stored_value(key) or None


# --- sender rules -------------------------------------------------------------------


def test_mail_without_a_user_goes_out_from_the_configured_sender(outgoing, fake_smtp, m365_tenant):
    assert send_mail("Default sender", "Body.", None, [RECIPIENT]) == 1
    assert send_mail("Other sender", "Body.", "Someone <webmaster@example.org>", [RECIPIENT]) == 1
    header_override = EmailMessage("Header override", "Body.", None, [RECIPIENT], headers={"From": "x@example.org"})
    assert header_override.send() == 1

    assert subjects(fake_smtp) == ["Default sender", "Other sender", "Header override"]
    for received in fake_smtp.messages:
        assert received.mail_from == m365_tenant.mailbox
        assert addresses(received, "From") == [m365_tenant.mailbox]
        assert received.message["Reply-To"] is None
    assert fake_smtp.rejected_messages == []


def test_mail_for_a_user_comes_from_the_sender_and_replies_to_the_user(outgoing, fake_smtp, m365_tenant, alice):
    assert send_mail_as(alice, "On behalf", "Body.", [RECIPIENT]) == 1

    [received] = fake_smtp.messages
    assert received.mail_from == m365_tenant.mailbox
    assert addresses(received, "From") == [m365_tenant.mailbox]
    assert addresses(received, "Reply-To") == [USER_ADDRESS]
    assert "Alice Smith" in str(received.message["Reply-To"])
    assert received.rcpt_tos == (RECIPIENT,)


def test_mail_for_a_user_comes_from_the_user_when_the_setting_is_on(outgoing, fake_smtp, m365_tenant, alice):
    outgoing.use_user_email_as_sender = True
    outgoing.save()
    fake_smtp.grant_send_as(m365_tenant.mailbox, USER_ADDRESS)

    assert send_mail_as(alice, "As the user", "Body.", [RECIPIENT]) == 1
    assert send_mail("Application mail", "Body.", None, [RECIPIENT]) == 1

    as_user, application = fake_smtp.messages
    assert as_user.mail_from == USER_ADDRESS
    assert addresses(as_user, "From") == [USER_ADDRESS]
    assert as_user.message["Reply-To"] is None
    assert application.mail_from == m365_tenant.mailbox
    assert addresses(application, "From") == [m365_tenant.mailbox]


# --- one token per lifetime ----------------------------------------------------------


def test_one_token_serves_many_sends_and_two_backend_instances(outgoing, fake_identity, fake_smtp):
    for number in range(3):
        send_mail(f"Single {number}", "Body.", None, [RECIPIENT])
    first, second = OutgoingEmailBackend(), OutgoingEmailBackend()
    assert first.send_messages([message("First A"), message("First B")]) == 2
    assert second.send_messages([message("Second A"), message("Second B")]) == 2

    assert len(fake_identity.token_requests) == 1
    assert len(fake_smtp.messages) == 7
    assert fake_smtp.connections == 5
    assert [attempt.success for attempt in fake_smtp.auth_attempts] == [True] * 5


def test_a_batch_uses_one_connection(outgoing, fake_identity, fake_smtp):
    batch = [message(f"Batch {number}") for number in range(10)]

    assert OutgoingEmailBackend().send_messages(batch) == 10

    assert subjects(fake_smtp) == [f"Batch {number}" for number in range(10)]
    assert fake_smtp.connections == 1
    assert fake_smtp.commands.count("AUTH") == 1
    assert len(fake_identity.token_requests) == 1


def test_close_sends_quit_without_waiting_for_the_221(outgoing, fake_smtp):
    backend = OutgoingEmailBackend()
    assert backend.open() is True
    fake_smtp.delay_reply_to("QUIT", 5.0)
    started = time.monotonic()
    backend.close()
    assert time.monotonic() - started < 1.0
    assert backend.connection is None
    give_up = time.monotonic() + 5
    while fake_smtp.commands[-1:] != ["QUIT"] and time.monotonic() < give_up:
        time.sleep(0.01)
    assert fake_smtp.commands == ["EHLO", "STARTTLS", "EHLO", "AUTH", "QUIT"]
    assert fake_smtp.server_errors == []


def test_the_token_is_renewed_once_it_expires(outgoing, fake_identity, fake_smtp):
    # msal (and the shared cache) renew a token with less than RENEWAL_MARGIN seconds left.
    fake_identity.token_lifetime = RENEWAL_MARGIN + 2
    send_mail("Fetches", "Body.", None, [RECIPIENT])
    fetched = time.monotonic()
    send_mail("Reuses", "Body.", None, [RECIPIENT])
    assert len(fake_identity.token_requests) == 1

    time.sleep(max(0.0, fetched + 2.2 - time.monotonic()))
    send_mail("Renews", "Body.", None, [RECIPIENT])

    assert len(fake_identity.token_requests) == 2
    assert subjects(fake_smtp) == ["Fetches", "Reuses", "Renews"]


def test_a_token_expiring_mid_batch_gets_a_new_session_before_the_next_message(outgoing, fake_identity, fake_smtp):
    fake_identity.token_lifetime = 2
    backend = OutgoingEmailBackend()
    assert backend.open() is True
    try:
        backend.send_messages([message("Before expiry")])
        time.sleep(2.1)
        backend.send_messages([message("After expiry")])
    finally:
        backend.close()

    assert subjects(fake_smtp) == ["Before expiry", "After expiry"]
    assert fake_smtp.connections == 2
    assert len(fake_identity.token_requests) == 2
    assert fake_smtp.rejected_messages == []


def test_saving_the_settings_invalidates_the_cached_token(outgoing, fake_identity, fake_smtp, m365_tenant):
    send_mail("First", "Body.", None, [RECIPIENT])
    old_key = cache_key(outgoing)
    assert stored_token_cache(old_key)

    outgoing.save()
    assert stored_token_cache(old_key) is None
    send_mail("After saving", "Body.", None, [RECIPIENT])
    assert len(fake_identity.token_requests) == 2

    new_secret = make_client_secret()
    m365_tenant.app.secret = new_secret
    outgoing.client_secret = new_secret
    outgoing.save()
    assert stored_token_cache(old_key) is None
    send_mail("New secret", "Body.", None, [RECIPIENT])
    assert len(fake_identity.token_requests) == 3
    assert cache_key(outgoing) != old_key
    assert subjects(fake_smtp) == ["First", "After saving", "New secret"]


def test_the_shared_token_cache_is_stored_encrypted(outgoing, m365_tenant):
    send_mail("Hello", "Body.", None, [RECIPIENT])

    stored = stored_token_cache(cache_key(outgoing))
    assert "AccessToken" not in stored
    assert "eyJ" not in stored
    assert m365_tenant.client_secret not in stored
    assert "AccessToken" in json.loads(crypto.decrypt(stored))


def test_the_connection_test_always_fetches_a_fresh_token(outgoing, fake_identity):
    send_mail("Cached", "Body.", None, [RECIPIENT])

    result = run_connection_test(outgoing.to_connection_settings(), timeout=10)

    assert result.outcome == "success"
    assert len(fake_identity.token_requests) == 2
    send_mail("Still cached", "Body.", None, [RECIPIENT])
    assert len(fake_identity.token_requests) == 2


def test_a_token_exchange_no_longer_accepts_is_replaced_once(outgoing, fake_identity, fake_smtp):
    send_mail("Cached token", "Body.", None, [RECIPIENT])
    fake_identity.rotate_signing_key()

    send_mail("Fresh token", "Body.", None, [RECIPIENT])

    assert len(fake_identity.token_requests) == 2
    assert [attempt.reason for attempt in fake_smtp.auth_attempts] == ["ok", "bad_signature", "ok"]
    assert subjects(fake_smtp) == ["Cached token", "Fresh token"]


# --- dropped connections ---------------------------------------------------------------


def test_a_421_mid_batch_resends_only_the_message_in_flight(outgoing, fake_identity, fake_smtp):
    backend = OutgoingEmailBackend()
    assert backend.open() is True
    try:
        assert backend.send_messages([message("One"), message("Two")]) == 2
        fake_smtp.reply_to("MAIL", SESSION_LIMIT, times=1)
        assert backend.send_messages([message("Three"), message("Four")]) == 2
    finally:
        backend.close()

    assert subjects(fake_smtp) == ["One", "Two", "Three", "Four"]
    assert fake_smtp.connections == 2
    assert len(fake_identity.token_requests) == 1


def test_a_connection_closed_after_data_delivers_every_message_exactly_once(outgoing, fake_smtp):
    backend = OutgoingEmailBackend()
    assert backend.open() is True
    try:
        backend.send_messages([message("One")])
        fake_smtp.reply_to("MESSAGE", "421 4.3.2 Service not available, closing transmission channel", times=1)
        assert backend.send_messages([message("Two"), message("Three")]) == 2
    finally:
        backend.close()

    assert subjects(fake_smtp) == ["One", "Two", "Three"]
    assert [received.subject for received in fake_smtp.rejected_messages] == ["Two"]
    assert fake_smtp.connections == 2


def test_a_connection_that_keeps_dropping_is_retried_once_then_reported(outgoing, fake_smtp):
    backend = OutgoingEmailBackend()
    assert backend.open() is True
    try:
        backend.send_messages([message("One")])
        fake_smtp.drop_after("MAIL")
        with pytest.raises(OutgoingEmailError) as raised:
            backend.send_messages([message("Two"), message("Three")])
    finally:
        backend.close()

    assert raised.value.code == "disconnected"
    assert "disconnected" in str(raised.value)
    assert subjects(fake_smtp) == ["One"]
    assert fake_smtp.connections == 2
    assert fake_smtp.commands.count("MAIL") == 3


# --- errors ------------------------------------------------------------------------------


def test_a_token_error_carries_the_aadsts_code_and_never_the_secret(outgoing, fake_identity, fake_smtp, m365_tenant):
    fake_identity.fail_with("AADSTS7000215")

    with pytest.raises(smtplib.SMTPException) as raised:
        send_mail("Refused", "Body.", None, [RECIPIENT])

    error = raised.value
    assert isinstance(error, OutgoingEmailError)
    assert (error.step, error.code) == ("token", "AADSTS7000215")
    assert "AADSTS7000215" in str(error)
    assert error.title in str(error)
    assert m365_tenant.client_secret not in str(error)
    assert send_mail("Silently refused", "Body.", None, [RECIPIENT], fail_silently=True) == 0
    assert fake_smtp.messages == []


def test_an_auth_refusal_carries_the_smtp_code_and_the_diagnosis(outgoing, fake_smtp, m365_tenant):
    fake_smtp.reply_to_auth("535 5.7.3 Authentication unsuccessful [BN9PR03CA0042.NAMPRD03.PROD.OUTLOOK.COM]")

    with pytest.raises(OutgoingEmailError) as raised:
        send_mail("Refused", "Body.", None, [RECIPIENT])

    text = str(raised.value)
    assert raised.value.code == "535-5.7.3"
    assert "535-5.7.3" in text
    assert "Exchange Online refused the token" in text
    assert "Bearer" not in text
    assert "eyJ" not in text
    assert m365_tenant.client_secret not in text


def test_send_as_denied_is_reported_not_retried(outgoing, fake_smtp, alice):
    outgoing.use_user_email_as_sender = True
    outgoing.save()

    with pytest.raises(OutgoingEmailError) as raised:
        send_mail_as(alice, "Not allowed", "Body.", [RECIPIENT])

    assert raised.value.code == "554-5.2.252"
    assert "SendAsDenied" in str(raised.value)
    assert fake_smtp.connections == 1
    assert send_mail_as(alice, "Not allowed", "Body.", [RECIPIENT], fail_silently=True) == 0


def test_unconfigured_settings_are_reported_before_any_connection(outgoing, fake_identity, fake_smtp):
    outgoing.client_id = ""
    outgoing.save()

    with pytest.raises(OutgoingEmailError) as raised:
        send_mail("Nowhere", "Body.", None, [RECIPIENT])

    assert raised.value.code == "not-configured"
    assert "client ID" in str(raised.value)
    assert fake_smtp.connections == 0
    assert fake_identity.requests == []


# --- plain SMTP and explicit arguments -----------------------------------------------------


@pytest.fixture
def plain_smtp(outgoing, fake_smtp) -> OutgoingEmailSettings:
    fake_smtp.add_user("relay@contoso.com", "relay-password-1")
    outgoing.protocol = "smtp"
    outgoing.username = "relay@contoso.com"
    outgoing.password = "relay-password-1"
    outgoing.sender_email = "relay@contoso.com"
    outgoing.use_secure_auth = True
    outgoing.save()
    return outgoing


def test_plain_smtp_authenticates_with_username_and_password(plain_smtp, fake_identity, fake_smtp):
    assert send_mail("Plain", "Body.", None, [RECIPIENT]) == 1

    [received] = fake_smtp.messages
    assert received.mail_from == "relay@contoso.com"
    assert received.authenticated_as == "relay@contoso.com"
    assert [attempt.mechanism for attempt in fake_smtp.auth_attempts] == ["LOGIN"]
    assert fake_identity.requests == []


def test_explicit_arguments_win_over_the_saved_settings(plain_smtp, fake_smtp):
    plain_smtp.password = "a-stale-password"
    plain_smtp.save()

    with pytest.raises(OutgoingEmailError) as raised:
        OutgoingEmailBackend().send_messages([message("Saved password")])
    assert raised.value.code == "535-5.7.3"
    assert "a-stale-password" not in str(raised.value)

    backend = OutgoingEmailBackend(password="relay-password-1")
    assert backend.send_messages([message("Explicit password")]) == 1
    assert subjects(fake_smtp) == ["Explicit password"]


# --- Django's sendtestemail, three processes ---------------------------------------------

def test_three_sendtestemail_processes_make_one_token_request(
    tmp_path, ca_bundle_path, fake_identity, fake_smtp, m365_tenant
):
    environment = project_environment(tmp_path, ca_bundle_path, fake_identity, m365_tenant)
    for _ in range(3):
        manage(environment, "sendtestemail", RECIPIENT)

    assert len(fake_identity.token_requests) == 1
    assert len(fake_smtp.messages) == 3
    assert [received.mail_from for received in fake_smtp.messages] == [m365_tenant.mailbox] * 3
    assert all(addresses(received, "From") == [m365_tenant.mailbox] for received in fake_smtp.messages)
