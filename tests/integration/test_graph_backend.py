"""The email backend sends over Microsoft Graph with the saved settings, through the loopback fakes."""

from __future__ import annotations

import os
import smtplib
import subprocess
import sys
import time
from email.utils import getaddresses
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.mail import EmailMessage, send_mail

from settings_app.backends import OutgoingEmailBackend, OutgoingEmailError
from settings_app.mail import send_mail_as
from settings_app.models import OutgoingEmailSettings
from settings_app.tls import shared_trust
from settings_app.transports import transport_for

pytestmark = pytest.mark.django_db

PROJECT = Path(__file__).resolve().parents[2]
RECIPIENT = "someone@example.net"
USER_ADDRESS = "alice@contoso.com"


@pytest.fixture
def outgoing(settings, graph_settings) -> OutgoingEmailSettings:
    settings.EMAIL_BACKEND = "settings_app.backends.OutgoingEmailBackend"
    return graph_settings


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user(
        username="alice", email=USER_ADDRESS, first_name="Alice", last_name="Smith", password="pw-12345-xyz"
    )


def message(subject: str, **kwargs) -> EmailMessage:
    return EmailMessage(subject, "Body.", None, [RECIPIENT], **kwargs)


def header_addresses(received, header: str) -> list[str]:
    return [address for _, address in getaddresses(received.message.get_all(header, []))]


def test_mail_goes_out_as_mime_from_the_configured_sender(outgoing, fake_graph, graph_tenant):
    assert send_mail("Default sender", "Body.", None, [RECIPIENT]) == 1
    assert send_mail("Other sender", "Body.", "Someone <webmaster@example.org>", [RECIPIENT]) == 1

    assert [received.subject for received in fake_graph.messages] == ["Default sender", "Other sender"]
    for received in fake_graph.messages:
        assert (received.mailbox, received.body_format) == (graph_tenant.mailbox, "mime")
        assert header_addresses(received, "From") == [graph_tenant.mailbox]
        assert received.recipients == [RECIPIENT]
        assert received.content.strip() == "Body."


def test_mail_for_a_user_replies_to_the_user_or_comes_from_them_when_the_setting_is_on(
    outgoing, fake_graph, graph_tenant, alice
):
    assert send_mail_as(alice, "On behalf", "Body.", [RECIPIENT]) == 1
    outgoing.use_user_email_as_sender = True
    outgoing.save()
    fake_graph.grant_send_as(graph_tenant.mailbox, USER_ADDRESS)
    assert send_mail_as(alice, "As the user", "Body.", [RECIPIENT]) == 1

    on_behalf, as_user = fake_graph.messages
    assert header_addresses(on_behalf, "From") == [graph_tenant.mailbox]
    assert header_addresses(on_behalf, "Reply-To") == [USER_ADDRESS]
    assert header_addresses(as_user, "From") == [USER_ADDRESS]
    assert as_user.mailbox == graph_tenant.mailbox


def test_bcc_recipients_reach_graph(outgoing, fake_graph):
    assert message("Hidden copy", cc=["cc@example.net"], bcc=["hidden@example.net"]).send() == 1
    [received] = fake_graph.messages
    assert received.recipients == [RECIPIENT, "cc@example.net", "hidden@example.net"]


def test_one_token_serves_many_messages_and_a_batch_uses_one_connection(outgoing, fake_identity, fake_graph):
    for number in range(2):
        send_mail(f"Single {number}", "Body.", None, [RECIPIENT])
    backend = OutgoingEmailBackend()
    assert backend.send_messages([message(f"Batch {number}") for number in range(3)]) == 3

    assert len(fake_identity.token_requests) == 1
    assert len(fake_graph.messages) == 5
    batch_ports = {request.client_port for request in fake_graph.requests[2:]}
    assert len(batch_ports) == 1
    assert all(request.had_token for request in fake_graph.requests)


def test_graph_and_smtp_tokens_never_share_a_cache_entry(outgoing):
    config = outgoing.to_connection_settings()
    graph_key = transport_for("graph_microsoft365").token_provider(config, shared_trust()).cache_key
    smtp_key = transport_for("smtp_microsoft365").token_provider(config, shared_trust()).cache_key
    assert graph_key != smtp_key


def test_a_short_retry_after_is_waited_out(outgoing, fake_graph):
    fake_graph.throttle(1)
    started = time.monotonic()
    assert send_mail("Throttled once", "Body.", None, [RECIPIENT]) == 1
    assert time.monotonic() - started >= 1
    assert [request.status for request in fake_graph.requests] == [429, 202]
    assert [received.subject for received in fake_graph.messages] == ["Throttled once"]


def test_a_long_retry_after_fails_at_once_with_the_throttle(outgoing, fake_graph):
    fake_graph.throttle(600)
    started = time.monotonic()
    with pytest.raises(smtplib.SMTPException) as raised:
        send_mail("Throttled long", "Body.", None, [RECIPIENT])
    assert time.monotonic() - started < 5
    error = raised.value
    assert isinstance(error, OutgoingEmailError)
    assert (error.step, error.code) == ("send", "ApplicationThrottled")
    assert "600 s" in str(error)
    assert [request.status for request in fake_graph.requests] == [429]


def test_a_message_over_the_size_limit_fails_naming_the_limit(outgoing, fake_graph):
    big = message("Too large")
    big.attach("big.bin", os.urandom(3_200_000), "application/octet-stream")
    with pytest.raises(OutgoingEmailError) as raised:
        big.send()
    assert raised.value.code == "ErrorMessageSizeExceeded"
    assert "at most 4 MB per sendMail request" in str(raised.value)
    assert fake_graph.requests == []


def test_a_cached_token_graph_no_longer_accepts_is_replaced_once(outgoing, fake_identity, fake_graph):
    send_mail("First", "Body.", None, [RECIPIENT])
    fake_identity.rotate_signing_key()
    send_mail("Second", "Body.", None, [RECIPIENT])

    assert len(fake_identity.token_requests) == 2
    assert [request.status for request in fake_graph.requests] == [202, 401, 202]
    assert [received.subject for received in fake_graph.messages] == ["First", "Second"]


def test_graph_needs_no_server_and_errors_carry_graphs_code(outgoing, fake_graph, graph_tenant):
    outgoing.server = ""
    outgoing.save()
    fake_graph.fail_with("ErrorAccessDenied", 403, "Access is denied. Check credentials and try again.")
    with pytest.raises(OutgoingEmailError) as raised:
        send_mail("Denied", "Body.", None, [RECIPIENT])
    assert (raised.value.step, raised.value.code) == ("send", "ErrorAccessDenied")
    assert "Access is denied" in str(raised.value)
    assert str(graph_tenant.client_secret) not in str(raised.value)
    assert send_mail("Silently denied", "Body.", None, [RECIPIENT], fail_silently=True) == 0


# --- Django's sendtestemail, three processes ---------------------------------------------

SETUP = """
import os
from settings_app.models import OutgoingEmailSettings
saved = OutgoingEmailSettings.load()
saved.protocol = "graph_microsoft365"
saved.server = ""
saved.username = saved.sender_email = os.environ["TEST_MAILBOX"]
saved.client_id = os.environ["TEST_CLIENT_ID"]
saved.tenant_id = os.environ["TEST_TENANT_ID"]
saved.client_secret = os.environ["TEST_CLIENT_SECRET"]
saved.save()
"""


def test_three_sendtestemail_processes_deliver_over_graph_with_one_token_request(
    tmp_path, ca_bundle_path, fake_identity, fake_graph, graph_tenant
):
    environment = {
        **{
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("MAILADMIN_", "DJANGO_")) and name != "DATABASE_URL"
        },
        "DJANGO_SETTINGS_MODULE": "mailadmin.settings",
        "MAILADMIN_INSTANCE_DIR": str(tmp_path / "instance"),
        "MAILADMIN_SQLITE_PATH": str(tmp_path / "db.sqlite3"),
        "MAILADMIN_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "MAILADMIN_AUTHORITY_HOST": fake_identity.authority_host,
        "MAILADMIN_GRAPH_URL": fake_graph.url,
        "MAILADMIN_CA_BUNDLE": str(ca_bundle_path),
        "TEST_MAILBOX": graph_tenant.mailbox,
        "TEST_CLIENT_ID": graph_tenant.client_id,
        "TEST_TENANT_ID": graph_tenant.tenant_id,
        "TEST_CLIENT_SECRET": graph_tenant.client_secret,
    }

    def manage(*arguments: str) -> None:
        done = subprocess.run(
            [sys.executable, "manage.py", *arguments],
            cwd=PROJECT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert graph_tenant.client_secret not in done.stdout + done.stderr

    manage("migrate", "--verbosity", "0")
    manage("shell", "--command", SETUP)
    for _ in range(3):
        manage("sendtestemail", RECIPIENT)

    assert len(fake_identity.token_requests) == 1
    assert len(fake_graph.messages) == 3
    assert all(received.recipients == [RECIPIENT] for received in fake_graph.messages)
    assert all(header_addresses(received, "From") == [graph_tenant.mailbox] for received in fake_graph.messages)
