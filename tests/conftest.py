from __future__ import annotations

import pytest

from settings_app.models import OutgoingEmailSettings

pytest_plugins = ["tests.fakes.fixtures"]


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def on_fakes(settings, fake_env):
    """Django settings pointing the product at the loopback fakes (settings are read at import)."""
    settings.MAILADMIN_CA_BUNDLE = fake_env["MAILADMIN_CA_BUNDLE"]
    settings.MAILADMIN_AUTHORITY_HOST = fake_env["MAILADMIN_AUTHORITY_HOST"]
    return settings


@pytest.fixture
def m365_settings(db, on_fakes, m365_tenant) -> OutgoingEmailSettings:
    """Saved Microsoft 365 settings for the fake tenant; every step passes against the fakes."""
    return _saved_for(
        m365_tenant,
        protocol="smtp_microsoft365",
        server=m365_tenant.smtp_host,
        port=m365_tenant.smtp_port,
        connection_security="starttls",
        use_secure_auth=True,
    )


def _saved_for(tenant, **fields) -> OutgoingEmailSettings:
    """The settings record saved with ``fields`` and the Entra ID app of ``tenant`` (client secret)."""
    record = OutgoingEmailSettings.load()
    for name, value in fields.items():
        setattr(record, name, value)
    record.cloud = "global"
    record.username = record.sender_email = tenant.mailbox
    record.client_id = tenant.client_id
    record.tenant_id = tenant.tenant_id
    record.client_secret = str(tenant.client_secret)
    record.save()
    return record


@pytest.fixture
def unused_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def on_graph(on_fakes, fake_graph, monkeypatch):
    """on_fakes, and Microsoft Graph requests going to the fake Graph."""
    on_fakes.MAILADMIN_GRAPH_URL = fake_graph.url
    monkeypatch.setenv("MAILADMIN_GRAPH_URL", fake_graph.url)
    return on_fakes


@pytest.fixture
def graph_settings(db, on_graph, graph_tenant) -> OutgoingEmailSettings:
    """Saved Microsoft 365 (Graph API) settings for the fake tenant; every step passes against the fakes."""
    return _saved_for(graph_tenant, protocol="graph_microsoft365")
