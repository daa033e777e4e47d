"""Random and hostile submissions to the Outgoing Email page.

Property: whatever is posted, the page answers without a server error; it either
saves (302) values free of control characters, or rejects the post with field
errors and leaves the saved record exactly as it was. Separately: nothing posted,
nor stored behind the form's back, smuggles a command onto the SMTP wire.
"""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from settings_app.models import OutgoingEmailSettings
from tests.integration.pages import SAVED_FIELDS, URL, failed_steps, m365_form, plain_smtp_form

pytestmark = pytest.mark.django_db

FIELDS = (*SAVED_FIELDS, *OutgoingEmailSettings.SECRET_FIELDS, "test_recipient")
LINE_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")
# Values that reach the SMTP or identity service's wire, or a URL.
WIRE_FIELDS = ("server", "username", "sender_email", "client_id", "tenant_id")
INJECTED_RECIPIENT = "attacker@example.net"
INJECTIONS = (
    f"\r\nRCPT TO:<{INJECTED_RECIPIENT}>",
    f"\nRCPT TO:<{INJECTED_RECIPIENT}>",
    "\r\nDATA\r\nSubject: injected\r\n\r\n.\r\nQUIT",
    "\rQUIT",
    "\x00",
    "\t",
    "\x1b[2J",
    "\x7f",
    "\x85",
    "\u2028",
    "\ufeff",
)
SQL = ("' OR '1'='1", "'; DROP TABLE settings_app_outgoingemailsettings; --", '" OR ""="', "1 UNION SELECT 1--")
HTML = ("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "{{ 7|add:7 }}", "{% debug %}", "</textarea>")
FRAGMENTS = INJECTIONS + SQL + HTML
# The fragments that would be live markup if a rejected post were shown back unescaped.
MARKUP = tuple(fragment for fragment in HTML if "<" in fragment)
PLAUSIBLE = ("svc@contoso.com", "smtp.office365.com", "587", "contoso.onmicrosoft.com", "global", "starttls", "on")

any_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
control_text = st.text(st.characters(max_codepoint=0x9F), max_size=20)
fragment = st.sampled_from(FRAGMENTS)
# Just past the longest limits (253 for a host, 254 for an address, 1024 for a secret).
oversized = st.builds(
    lambda unit, count: unit * count, st.sampled_from(["a", "é", "😀", "\r\n", "x."]), st.integers(250, 1100)
)
hostile_text = st.one_of(
    any_text,
    control_text,
    fragment,
    st.builds(str.__add__, st.sampled_from(PLAUSIBLE), fragment),
    st.builds(str.__add__, fragment, st.sampled_from(PLAUSIBLE)),
    oversized,
)
hostile_port = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(["0", "65536", "-587", "587.0", "5e2", "0x24b", " 587 ", "٥٨٧", "587\r\n", ""]),
    hostile_text,
)
hostile_guid = st.one_of(
    st.uuids().map(lambda value: str(value)[:-1]),
    st.uuids().map(lambda value: value.hex),
    st.uuids().map(lambda value: f"{{{value}}}"),
    st.uuids().map(lambda value: str(value).replace("-", "\r\n", 1)),
    st.uuids().map(lambda value: str(value).upper().replace("A", "G")),
    hostile_text,
)
# Printable payloads that the fields built for arbitrary text (secrets, a plain SMTP user) accept.
storable_text = st.one_of(
    st.sampled_from(SQL + HTML),
    st.builds(str.__add__, st.sampled_from(PLAUSIBLE), st.sampled_from(SQL + HTML)),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=60),
)
FREE_TEXT_FIELDS = ("password", "client_secret", "username")
HOSTILE = {name: hostile_text for name in FIELDS} | {
    "port": hostile_port,
    "client_id": hostile_guid,
    "tenant_id": st.one_of(hostile_guid, st.sampled_from(["contoso", "-contoso.com", "contoso..com", "xn--.com"])),
}


VALID = {
    "smtp_microsoft365": {
        "protocol": "smtp_microsoft365",
        "cloud": "global",
        "server": "smtp.office365.com",
        "port": "587",
        "connection_security": "starttls",
        "username": "svc@contoso.com",
        "sender_email": "svc@contoso.com",
        "client_id": "2b1c7c5e-0d0f-4c8e-9a3e-6f1f1c1a2b3c",
        "tenant_id": "contoso.onmicrosoft.com",
        "client_secret": "abc8Q~client-secret-value",
        "test_recipient": "",
        "action": "save",
    },
    "smtp": {
        "protocol": "smtp",
        "server": "mail.example.com",
        "port": "587",
        "connection_security": "starttls",
        "use_secure_auth": "on",
        "username": "app",
        "password": "app-password",
        "sender_email": "app@example.com",
        "use_user_email_as_sender": "on",
        "test_recipient": "someone@example.com",
        "action": "save",
    },
}


@st.composite
def submissions(draw) -> dict[str, str]:
    """A valid post with SQL or HTML in up to two free-text fields, up to three fields made
    hostile and up to one left out.

    The valid values are fixed, so that an accepted post changes only what was made
    hostile and the page's change log, rendered with every rejection, stays as short
    as a real one.
    """
    data = dict(VALID[draw(st.sampled_from(sorted(VALID)))])
    for name in draw(st.sets(st.sampled_from(FREE_TEXT_FIELDS), max_size=2)):
        data[name] = draw(storable_text)
    for name in draw(st.sets(st.sampled_from(FIELDS), max_size=3)):
        data[name] = draw(HOSTILE[name])
    for name in draw(st.sets(st.sampled_from(FIELDS), max_size=1)):
        data.pop(name, None)
    return data


def saved_record() -> dict[str, object]:
    record = OutgoingEmailSettings.load()
    return {field.attname: getattr(record, field.attname) for field in record._meta.concrete_fields}


def control_characters(value: str) -> list[str]:
    """The C0 control characters and DEL in ``value`` (those that end or split a protocol line), as escapes."""
    return [repr(char) for char in LINE_CONTROLS.findall(value)]


@settings(
    max_examples=1000,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=submissions())
def test_any_submission_is_saved_clean_or_rejected_field_by_field(admin_client, data):
    before = saved_record()
    response = admin_client.post(URL, data)
    event(f"HTTP {response.status_code}")
    assert response.status_code in (200, 302)
    if response.status_code == 302:
        saved = OutgoingEmailSettings.load()
        for name in WIRE_FIELDS:
            assert control_characters(getattr(saved, name)) == [], name
        saved.full_clean()
        return
    form = response.context["form"]
    assert form.errors
    assert set(form.errors) <= set(form.fields)
    html = response.content.decode()
    assert "invalid-feedback" in html
    assert [tag for tag in MARKUP if tag in html] == []
    assert saved_record() == before


@pytest.mark.parametrize("control", ["\x85", "\x9b"])
def test_c1_control_characters_are_refused_in_the_username(control, admin_client):
    data = {
        "protocol": "smtp",
        "server": "mail.example.com",
        "port": "587",
        "connection_security": "starttls",
        "use_secure_auth": "on",
        "username": f"ap{control}p",
        "password": "app-password",
        "sender_email": "app@example.com",
        "action": "save",
    }
    response = admin_client.post(URL, data)
    assert response.status_code == 200
    assert "username" in response.context["form"].errors


@pytest.mark.parametrize("field", ["server", "username", "sender_email", "client_id", "tenant_id", "test_recipient"])
@pytest.mark.parametrize("injection", INJECTIONS[:4])
def test_an_injected_command_is_refused_before_any_connection(
    field, injection, admin_client, on_fakes, m365_tenant, fake_identity, fake_smtp
):
    data = m365_form(m365_tenant)
    data[field] += injection
    response = admin_client.post(URL, data)
    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert (fake_smtp.connections, fake_identity.requests) == (0, [])


def test_the_wire_carries_exactly_one_command_per_step(admin_client, on_fakes, m365_tenant, fake_smtp):
    html = admin_client.post(URL, m365_form(m365_tenant), follow=True).content.decode()
    assert failed_steps(html) == []
    assert fake_smtp.commands == ["EHLO", "STARTTLS", "EHLO", "AUTH", "MAIL", "RCPT", "DATA", "MESSAGE", "QUIT"]
    assert [message.rcpt_tos for message in fake_smtp.messages] == [("someone@example.com",)]


@pytest.mark.parametrize(
    ("field", "step"),
    [("sender_email", "send"), ("username", "auth")],
)
def test_a_line_break_stored_behind_the_forms_back_never_reaches_the_wire(field, step, m365_settings, fake_smtp):
    OutgoingEmailSettings.objects.update(**{field: f"svc@contoso.com\r\nRCPT TO:<{INJECTED_RECIPIENT}>"})
    out = io.StringIO()
    with pytest.raises(SystemExit):
        call_command("test_outgoing_email", "--json", "--to", "someone@example.com", stdout=out)
    assert '"code": "control-characters"' in out.getvalue()
    assert re.search(rf'"name": "{step}",\s*"status": "failed"', out.getvalue())
    assert fake_smtp.commands.count("RCPT") == 0
    assert INJECTED_RECIPIENT not in repr(fake_smtp.messages)


@pytest.mark.parametrize(
    "overrides",
    [{"username": "svc@exämple.com"}, {"sender_email": "svc@exämple.com"}, {"test_recipient": "someone@exämple.com"}],
)
def test_a_non_ascii_address_is_refused_on_its_field(overrides, admin_client, on_fakes, m365_tenant, fake_smtp):
    response = admin_client.post(URL, m365_form(m365_tenant, **overrides))
    assert response.status_code == 200
    (field,) = overrides
    assert "Only plain ASCII" in " ".join(response.context["form"].errors[field])
    assert fake_smtp.connections == 0


def test_a_non_ascii_address_stored_behind_the_forms_back_fails_its_step(m365_settings, fake_smtp):
    OutgoingEmailSettings.objects.update(sender_email="svc@exämple.com")
    out = io.StringIO()
    with pytest.raises(SystemExit):
        call_command("test_outgoing_email", "--json", "--to", "someone@example.com", stdout=out)
    assert re.search(r'"name": "send",\s*"status": "failed"', out.getvalue())
    assert '"code": "non-ascii"' in out.getvalue()
    assert fake_smtp.commands.count("MAIL") == 0


def test_a_non_ascii_smtp_password_is_refused_on_its_field(admin_client, on_fakes, fake_smtp):
    data = plain_smtp_form(fake_smtp, password="pässwörd")
    response = admin_client.post(URL, data)
    assert response.status_code == 200
    assert "Only plain ASCII" in " ".join(response.context["form"].errors["password"])
    assert fake_smtp.auth_attempts == []
