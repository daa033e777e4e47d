"""MAILADMIN_ALLOWED_SMTP_HOSTS holds for settings already stored (or restored from a backup):
the command, the email backend and the page refuse to connect, after resolving the name."""

from __future__ import annotations

import json

import pytest
from django.core.mail import send_mail
from django.core.management import call_command

from settings_app.backends import OutgoingEmailError
from settings_app.runner import run_connection_test

pytestmark = pytest.mark.django_db


@pytest.fixture
def only_office365(settings, m365_settings):
    """Settings stored for the fake Exchange (localhost), then an allow-list that excludes it."""
    settings.MAILADMIN_ALLOWED_SMTP_HOSTS = ["smtp.office365.com"]
    settings.EMAIL_BACKEND = "settings_app.backends.OutgoingEmailBackend"
    return m365_settings


def dns_step(steps: list[dict]) -> dict:
    return next(step for step in steps if step["name"] == "dns")


def test_the_command_refuses_a_stored_server_outside_the_allow_list(only_office365, fake_smtp, fake_identity, capsys):
    with pytest.raises(SystemExit) as exit_status:
        call_command("test_outgoing_email", "--json")

    assert exit_status.value.code == 1
    result = json.loads(capsys.readouterr().out)
    assert (dns_step(result["steps"])["status"], dns_step(result["steps"])["code"]) == ("failed", "not-allowed")
    assert fake_smtp.connections == 0
    # The token is asked for alongside DNS (Entra ID is not an SMTP host): the credentials are still proven.
    token = next(step for step in result["steps"] if step["name"] == "token")
    assert token["status"] == "ok" and len(fake_identity.token_requests) == 1


def test_the_backend_refuses_a_stored_server_outside_the_allow_list(only_office365, fake_smtp):
    with pytest.raises(OutgoingEmailError) as raised:
        send_mail("Subject", "Body.", None, ["someone@example.net"])

    assert raised.value.code == "not-allowed"
    assert fake_smtp.connections == 0


def test_the_backend_refuses_a_stored_numeric_host_form(settings, m365_settings, fake_smtp):
    settings.EMAIL_BACKEND = "settings_app.backends.OutgoingEmailBackend"
    m365_settings.server = "2130706433"
    m365_settings.save()

    with pytest.raises(OutgoingEmailError) as raised:
        send_mail("Subject", "Body.", None, ["someone@example.net"])

    assert raised.value.code == "invalid-host"
    assert fake_smtp.connections == 0


def test_the_connection_test_behind_save_and_test_refuses_it_too(only_office365, fake_smtp):
    result = run_connection_test(only_office365.to_connection_settings())

    assert (result.steps[0].status, result.steps[0].code) == ("failed", "not-allowed")
    assert "MAILADMIN_ALLOWED_SMTP_HOSTS" in result.steps[0].detail
    assert fake_smtp.connections == 0
