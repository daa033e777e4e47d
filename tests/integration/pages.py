"""The Outgoing Email page as a browser posts to it, for page-level tests."""

from __future__ import annotations

import base64
import re

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from settings_app.models import OutgoingEmailSettings
from tests.fakes.fixtures import GraphTenant, M365Tenant

URL = "/settings/outgoing-email/"
CERTIFICATE_URL = "/settings/outgoing-email/certificate.pem"
SAVED_FIELDS = tuple(
    name
    for name in OutgoingEmailSettings.EDITABLE_FIELDS
    if name not in OutgoingEmailSettings.SECRET_FIELDS and name != "client_secret_expires_on"
)
_STEP = re.compile(r'data-step="(\w+)" data-status="(\w+)"(?: data-code="([^"]+)")?')


CLIENT_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"
TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"


def _with(data: dict[str, str], overrides: dict[str, str | None]) -> dict[str, str]:
    """``data`` updated with ``overrides``; an override of None leaves the field out of the post."""
    data.update(overrides)
    return {name: value for name, value in data.items() if value is not None}


def smtp_post(**overrides: str | None) -> dict[str, str]:
    """A Save post for plain SMTP to mail.example.com:25, unencrypted, without AUTH."""
    data = {
        "protocol": "smtp",
        "server": "mail.example.com",
        "port": "25",
        "connection_security": "none",
        "sender_email": "app@example.com",
        "action": "save",
    }
    return _with(data, overrides)


def m365_post(**overrides: str | None) -> dict[str, str]:
    """A valid Microsoft 365 post with made-up IDs and secret, for tests that reach no server."""
    data = {
        "protocol": "smtp_microsoft365",
        "cloud": "global",
        "server": "smtp.office365.com",
        "port": "587",
        "connection_security": "starttls",
        "username": "noreply@contoso.com",
        "sender_email": "noreply@contoso.com",
        "client_id": CLIENT_ID,
        "tenant_id": TENANT_ID,
        "client_secret": "secret-value",
    }
    return _with(data, overrides)


def m365_form(tenant: M365Tenant, **overrides: str) -> dict[str, str]:
    """A Save and test post for ``tenant`` that passes every step against the fakes."""
    data = {
        "protocol": "smtp_microsoft365",
        "cloud": "global",
        "server": tenant.smtp_host,
        "port": str(tenant.smtp_port),
        "connection_security": "starttls",
        "username": tenant.mailbox,
        "sender_email": tenant.mailbox,
        "client_id": tenant.client_id,
        "tenant_id": tenant.tenant_id,
        "client_secret": str(tenant.client_secret),
        "test_recipient": "someone@example.com",
        "action": "save_and_test",
    }
    data.update(overrides)
    return data


def graph_form(tenant: GraphTenant, **overrides: str) -> dict[str, str]:
    """A Save and test post for Microsoft 365 (Graph API) as a browser with JavaScript sends it:
    the hidden server, port and connection security fields are posted empty."""
    data = {
        "protocol": "graph_microsoft365",
        "cloud": "global",
        "server": "",
        "port": "",
        "connection_security": "",
        "username": tenant.mailbox,
        "sender_email": tenant.mailbox,
        "client_id": tenant.client_id,
        "tenant_id": tenant.tenant_id,
        "client_secret": str(tenant.client_secret),
        "action": "save_and_test",
    }
    data.update(overrides)
    return data


def _with_credential(data: dict[str, str], kind: str) -> dict[str, str]:
    """``data`` with the ``kind`` credential instead of the client secret."""
    data["credential_type"] = kind
    del data["client_secret"]
    return data


def certificate_form(tenant: M365Tenant, **overrides: str) -> dict[str, str]:
    """``m365_form`` with the certificate credential (and no client secret)."""
    return _with_credential(m365_form(tenant, **overrides), "certificate")


def federated_form(tenant: M365Tenant, **overrides: str) -> dict[str, str]:
    """``m365_form`` with the federated credential (and no client secret)."""
    return _with_credential(m365_form(tenant, **overrides), "federated")


def graph_credential_form(tenant: GraphTenant, kind: str, **overrides: str) -> dict[str, str]:
    """``graph_form`` with the ``kind`` credential ("certificate" or "federated"), no client secret."""
    return _with_credential(graph_form(tenant, **overrides), kind)


def plain_smtp_form(smtp_server, **overrides: str) -> dict[str, str]:
    """A Save and test post for plain SMTP with AUTH over STARTTLS to ``smtp_server`` (a fake)."""
    data = {
        "protocol": "smtp",
        "server": smtp_server.hostname,
        "port": str(smtp_server.port),
        "connection_security": "starttls",
        "use_secure_auth": "on",
        "username": "app",
        "sender_email": "app@example.com",
        "action": "save_and_test",
    }
    data.update(overrides)
    return data


def form_of(record: OutgoingEmailSettings) -> dict[str, str]:
    """A post that keeps ``record`` as saved (secrets blank: the saved ones are kept)."""
    return {
        name: str(value)
        for name in ("protocol", "cloud", "server", "port", "connection_security", "username", "sender_email",
                     "client_id", "tenant_id")
        if (value := getattr(record, name)) is not None
    }


def steps_on_page(html: str) -> list[tuple[str, str, str]]:
    """(step, status, code) for each step of the shown test result; code is "" when absent."""
    return _STEP.findall(html)


def failed_steps(html: str) -> list[tuple[str, str]]:
    return [(name, code) for name, status, code in steps_on_page(html) if status == "failed"]


def download_certificate(client) -> str:
    """The public certificate the page offers for upload (the pending one when there is one)."""
    response = client.get(CERTIFICATE_URL)
    assert response.status_code == 200
    return response.content.decode()


def sent_x5t(fake_identity) -> str:
    """The certificate thumbprint of the last assertion Entra ID received (msal pads it; RFC 7515 does not)."""
    return fake_identity.token_requests[-1].assertion["header"]["x5t"].rstrip("=")


def x5t_of(pem: str) -> str:
    digest = x509.load_pem_x509_certificate(pem.encode()).fingerprint(hashes.SHA1())
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
