"""Save and test through the page against a faulty identity service or SMTP server.

Each fault must be named at the right step, within the test's time budget plus one
second, and must leave the saved settings exactly as the post saved them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from settings_app.models import OutgoingEmailSettings
from tests.fakes import tls
from tests.fakes.fixtures import M365Tenant, make_client_secret
from tests.fakes.identity import FakeIdentity, Redacted
from tests.fakes.smtp import FakeExchange
from tests.integration.pages import URL, failed_steps, m365_form

pytestmark = pytest.mark.django_db

BUDGET = 3
# Changed by every save, whatever was posted.
BOOKKEEPING = ("id", "updated_at", "updated_by", "version")
SECRETS = ("password", "client_secret")


@dataclass
class Lab:
    """What a fault's set-up may change: the fakes, the Django settings, other fixtures."""

    tenant: M365Tenant
    identity: FakeIdentity
    smtp: FakeExchange
    settings: object
    request: pytest.FixtureRequest

    def fixture(self, name: str):
        return self.request.getfixturevalue(name)


Fault = Callable[[Lab], dict[str, str]]


@pytest.fixture
def untrusted_identity(fake_smtp_server: FakeExchange, m365_tenant: M365Tenant) -> Iterator[FakeIdentity]:
    """A second identity service, knowing the tenant, whose certificate no one trusts."""
    with FakeIdentity(server_cert=tls.untrusted_server_cert()) as identity:
        identity.add_tenant(m365_tenant.tenant_id, ("contoso.onmicrosoft.com",))
        identity.register_app(m365_tenant.tenant_id, m365_tenant.client_id, m365_tenant.client_secret)
        yield identity


@pytest.fixture
def untrusted_smtp(fake_identity: FakeIdentity, m365_tenant: M365Tenant) -> Iterator[FakeExchange]:
    """A second SMTP server, with the tenant's mailbox, whose certificate no one trusts."""
    with FakeExchange(identity=fake_identity, server_cert=tls.untrusted_server_cert()) as server:
        server.setup_mailbox(m365_tenant.app, m365_tenant.mailbox)
        yield server


def identity_outage(lab: Lab) -> dict[str, str]:
    lab.identity.respond_with_status(503)
    return {}


def identity_non_json(lab: Lab) -> dict[str, str]:
    lab.identity.respond_with_non_json()
    return {}


def identity_stall(lab: Lab) -> dict[str, str]:
    lab.identity.stall(BUDGET * 5)
    return {}


def identity_untrusted(lab: Lab) -> dict[str, str]:
    lab.settings.MAILADMIN_AUTHORITY_HOST = lab.fixture("untrusted_identity").authority_host
    return {}


def smtp_refused(lab: Lab) -> dict[str, str]:
    return {"server": "127.0.0.1", "port": str(lab.fixture("unused_port"))}


def smtp_silent(lab: Lab) -> dict[str, str]:
    return {"server": "127.0.0.1", "port": str(lab.fixture("silent_server").port)}


def smtp_drops_after_ehlo(lab: Lab) -> dict[str, str]:
    lab.smtp.drop_after("EHLO")
    return {}


def smtp_without_starttls(lab: Lab) -> dict[str, str]:
    lab.smtp.no_starttls()
    return {}


def smtp_untrusted(lab: Lab) -> dict[str, str]:
    server = lab.fixture("untrusted_smtp")
    return {"server": server.hostname, "port": str(server.port)}


def token_refused(lab: Lab) -> dict[str, str]:
    lab.smtp.remove_service_principal(lab.tenant.client_id)
    return {}


def smtp_auth_disabled(lab: Lab) -> dict[str, str]:
    lab.smtp.disable_smtp_auth(lab.tenant.mailbox)
    return {}


def send_as_denied(lab: Lab) -> dict[str, str]:
    return {"sender_email": "ceo@contoso.com"}


def unresolvable_server(lab: Lab) -> dict[str, str]:
    return {"server": "smtp.invalid"}


FAULTS: list[tuple[Fault, tuple[str, str]]] = [
    (identity_outage, ("token", "http-503")),
    (identity_non_json, ("token", "invalid-response")),
    (identity_stall, ("token", "timeout")),
    (identity_untrusted, ("token", "tls-untrusted")),
    (smtp_refused, ("connect", "refused")),
    (smtp_silent, ("connect", "timeout")),
    (smtp_drops_after_ehlo, ("ehlo", "disconnected")),
    (smtp_without_starttls, ("starttls", "starttls-unsupported")),
    (smtp_untrusted, ("starttls", "tls-untrusted")),
    (token_refused, ("auth", "535-5.7.3")),
    (smtp_auth_disabled, ("auth", "535-5.7.139")),
    (send_as_denied, ("send", "554-5.2.252")),
    (unresolvable_server, ("dns", "dns")),
]


def hidden(values: dict[str, object]) -> dict[str, object]:
    """``values`` with the secrets wrapped so that a failed comparison does not print them."""
    return {name: Redacted(value) if name in SECRETS else value for name, value in values.items()}


def saved_values() -> dict[str, object]:
    record = OutgoingEmailSettings.load()
    return hidden(
        {
            field.attname: getattr(record, field.attname)
            for field in record._meta.concrete_fields
            if field.name not in BOOKKEEPING
        }
    )


def posted_values(data: dict[str, str]) -> dict[str, object]:
    """What a valid Microsoft 365 post saves, as the model holds it."""
    return hidden(
        {
            "protocol": data["protocol"],
            "cloud": data["cloud"],
            "server": data["server"],
            "port": int(data["port"]),
            "connection_security": data["connection_security"],
            "use_secure_auth": True,
            "username": data["username"],
            "sender_email": data["sender_email"],
            "use_user_email_as_sender": False,
            "client_id": data["client_id"],
            "tenant_id": data["tenant_id"],
            "client_secret": data["client_secret"],
        }
    )


@pytest.fixture
def lab(request, settings, on_fakes, m365_settings, m365_tenant, fake_identity, fake_smtp) -> Lab:
    settings.MAILADMIN_TEST_TIMEOUT = BUDGET
    return Lab(m365_tenant, fake_identity, fake_smtp, settings, request)


@pytest.mark.parametrize(("fault", "expected"), FAULTS, ids=[fault.__name__ for fault, _ in FAULTS])
def test_the_fault_is_named_in_time_and_the_settings_stay_as_posted(fault: Fault, expected, lab, admin_client):
    data = m365_form(lab.tenant, client_secret=make_client_secret(), **fault(lab))
    lab.tenant.app.secret = data["client_secret"]
    before = saved_values()
    started = time.monotonic()
    response = admin_client.post(URL, data, follow=True)
    elapsed = time.monotonic() - started
    html = response.content.decode()
    assert response.status_code == 200
    assert elapsed < BUDGET + 1, f"{elapsed:.1f} s"
    assert failed_steps(html) == [expected]
    assert 'data-outcome="failure"' in html
    assert saved_values() == {**before, **posted_values(data)}
