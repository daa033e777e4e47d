"""The Outgoing Email page as a browser posts to it, for page-level tests."""

from __future__ import annotations

import re

from settings_app.models import OutgoingEmailSettings
from tests.fakes.fixtures import M365Tenant

URL = "/settings/outgoing-email/"
SAVED_FIELDS = tuple(
    name
    for name in OutgoingEmailSettings.EDITABLE_FIELDS
    if name not in OutgoingEmailSettings.SECRET_FIELDS and name != "client_secret_expires_on"
)
_STEP = re.compile(r'data-step="(\w+)" data-status="(\w+)"(?: data-code="([^"]+)")?')


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


def certificate_form(tenant: M365Tenant, **overrides: str) -> dict[str, str]:
    """``m365_form`` with the certificate credential (and no client secret)."""
    data = m365_form(tenant, credential_type="certificate", **overrides)
    del data["client_secret"]
    return data


def federated_form(tenant: M365Tenant, **overrides: str) -> dict[str, str]:
    """``m365_form`` with the federated credential (and no client secret)."""
    data = m365_form(tenant, credential_type="federated", **overrides)
    del data["client_secret"]
    return data


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
