from __future__ import annotations

import pytest

from settings_app.forms import OutgoingEmailSettingsForm
from settings_app.models import OutgoingEmailSettings
from tests.integration.pages import m365_post, smtp_post

pytestmark = pytest.mark.django_db

def form_for(data: dict) -> OutgoingEmailSettingsForm:
    return OutgoingEmailSettingsForm(data, instance=OutgoingEmailSettings.load())


def test_a_complete_microsoft365_form_is_valid():
    assert form_for(m365_post()).is_valid()


def test_choosing_microsoft365_fills_server_and_port_when_blank():
    form = form_for(m365_post(server="", port=""))
    assert form.is_valid(), form.errors
    saved = form.save()
    assert (saved.server, saved.port) == ("smtp.office365.com", 587)


def test_the_default_follows_the_national_cloud():
    form = form_for(m365_post(server="", cloud="usgov"))
    assert form.is_valid()
    assert form.save().server == "smtp.office365.us"


def test_typed_server_is_kept():
    form = form_for(m365_post(server="smtp-relay.contoso.com"))
    assert form.is_valid()
    assert form.save().server == "smtp-relay.contoso.com"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("client_id", "not-a-guid", "Enter a GUID"),
        ("tenant_id", "contoso", "Directory (tenant) ID"),
        ("tenant_id", "contoso .com", "Directory (tenant) ID"),
        ("username", "noreply", "mailbox's address"),
        ("sender_email", "not-an-email", "valid email"),
        ("server", "smtp.office365.com\r\nRCPT TO:<x@y>", "control characters"),
        ("server", "bad host", "host name"),
        ("port", "70000", "less than or equal to 65535"),
        ("port", "0", "greater than or equal to 1"),
        ("connection_security", "none", "encrypted connection"),
    ],
)
def test_bad_input_gets_a_message_on_its_field(field, value, message):
    form = form_for(m365_post(**{field: value}))
    assert not form.is_valid()
    assert message in " ".join(form.errors[field])


def test_a_domain_tenant_is_accepted():
    assert form_for(m365_post(tenant_id="contoso.onmicrosoft.com")).is_valid()


def test_microsoft365_requires_its_fields():
    form = form_for(m365_post(client_id="", tenant_id="", username="", client_secret=""))
    assert not form.is_valid()
    assert set(form.errors) == {"client_id", "tenant_id", "username", "client_secret"}


def test_plain_smtp_does_not_need_microsoft_fields():
    form = form_for(
        smtp_post(port="465", connection_security="ssl_tls", use_secure_auth="on", username="app", password="pw")
    )
    assert form.is_valid(), form.errors


def test_plain_smtp_with_auth_needs_username_and_password():
    form = form_for(smtp_post(use_secure_auth="on"))
    assert not form.is_valid()
    assert set(form.errors) == {"username", "password"}


def test_a_blank_secret_keeps_the_saved_one():
    form_for(m365_post(client_secret="first-secret")).save()
    form = form_for(m365_post(client_secret=""))
    assert form.is_valid(), form.errors
    form.save()
    assert OutgoingEmailSettings.load().client_secret == "first-secret"


def test_the_secret_is_never_rendered_back():
    form_for(m365_post(client_secret="first-secret")).save()
    html = OutgoingEmailSettingsForm(instance=OutgoingEmailSettings.load()).as_div()
    assert "first-secret" not in html
    assert "A client secret is saved" in html
