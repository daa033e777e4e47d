"""Pytest plugin: ``pytest_plugins = ["tests.fakes.fixtures"]``.

Session fixtures start one ``FakeIdentity``, one ``FakeExchange`` and one ``FakeGraph`` (linked);
the function fixtures hand them out after ``reset(everything=True)`` so no
test sees another test's tenants, grants, faults or simulated round trip
(``fake_smtp.simulate_round_trip(0.030)``).
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes import tls
from tests.fakes.graph import MAIL_SEND, FakeGraph
from tests.fakes.identity import EXCHANGE_RESOURCE, GRAPH_RESOURCE, FakeIdentity, Redacted, RegisteredApp
from tests.fakes.smtp import FakeExchange, SilentServer
from tests.fakes.webhook import FakeWebhook

ENV_CA_BUNDLE = "MAILADMIN_CA_BUNDLE"
ENV_AUTHORITY_HOST = "MAILADMIN_AUTHORITY_HOST"
REQUESTS_CA_ENV = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


@dataclass(frozen=True)
class M365Tenant:
    """A ready-to-send tenant: app registered in Entra, mailbox set up in Exchange.

    ``client_secret`` is a ``Redacted`` str: usable as a str, hidden in reprs.
    """

    tenant_id: str
    client_id: str
    client_secret: str = field(repr=False)
    mailbox: str
    object_id: str
    authority_host: str
    smtp_host: str
    smtp_port: int
    app: RegisteredApp = field(repr=False, compare=False)
    scope: str = f"{EXCHANGE_RESOURCE}/.default"

    @property
    def authority(self) -> str:
        return f"{self.authority_host}/{self.tenant_id}"


@dataclass(frozen=True)
class GraphTenant:
    """A tenant whose app may send through the fake Graph as ``mailbox`` (Mail.Send consented)."""

    tenant_id: str
    client_id: str
    client_secret: str = field(repr=False)
    mailbox: str
    app: RegisteredApp = field(repr=False, compare=False)
    graph_url: str = ""


def make_client_secret() -> Redacted:
    """A random secret shaped like an Entra client secret value (40 chars, ``~``)."""
    return Redacted(secrets.token_urlsafe(8)[:3] + "8Q~" + secrets.token_urlsafe(32)[:34])


@pytest.fixture(scope="session")
def ca_bundle_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PEM of the trusted test CA, written once per session."""
    return tls.write_ca_bundle(tmp_path_factory.mktemp("fake-ca") / "ca.pem")


@pytest.fixture(scope="session")
def fake_identity_server() -> Iterator[FakeIdentity]:
    """The session's FakeIdentity (prefer ``fake_identity``)."""
    with FakeIdentity() as server:
        yield server


@pytest.fixture(scope="session")
def fake_smtp_server(fake_identity_server: FakeIdentity) -> Iterator[FakeExchange]:
    """The session's FakeExchange, validating tokens with the session FakeIdentity."""
    with FakeExchange(identity=fake_identity_server) as server:
        yield server


@pytest.fixture(scope="session")
def fake_graph_server(fake_identity_server: FakeIdentity) -> Iterator[FakeGraph]:
    """The session's FakeGraph, validating tokens with the session FakeIdentity."""
    with FakeGraph(fake_identity_server) as server:
        yield server


@pytest.fixture
def fake_graph(fake_graph_server: FakeGraph) -> Iterator[FakeGraph]:
    """FakeGraph with no mailboxes, grants, faults or records."""
    fake_graph_server.reset(everything=True)
    yield fake_graph_server
    fake_graph_server.reset(everything=True)


@pytest.fixture
def fake_identity(fake_identity_server: FakeIdentity) -> Iterator[FakeIdentity]:
    """FakeIdentity with no tenants, faults or records."""
    fake_identity_server.reset(everything=True)
    yield fake_identity_server
    fake_identity_server.reset(everything=True)


@pytest.fixture
def fake_smtp(fake_smtp_server: FakeExchange) -> Iterator[FakeExchange]:
    """FakeExchange with no setup, faults or records."""
    fake_smtp_server.reset(everything=True)
    yield fake_smtp_server
    fake_smtp_server.reset(everything=True)


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    """A listener that accepts and never sends a banner."""
    with SilentServer() as server:
        yield server


@pytest.fixture
def fake_env(monkeypatch: pytest.MonkeyPatch, ca_bundle_path: Path, fake_identity: FakeIdentity) -> dict[str, str]:
    """Point the product at the fakes: CA bundle and authority host env vars.

    REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE are left as the machine has them (add
    ``no_requests_ca_env`` to drop them): with either set, requests ignores a
    Session-level ``verify`` such as msal's ``verify=`` argument.
    """
    values = {
        ENV_CA_BUNDLE: str(ca_bundle_path),
        ENV_AUTHORITY_HOST: fake_identity.authority_host,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def no_requests_ca_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE, which override a requests Session's ``verify``."""
    for name in REQUESTS_CA_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def m365_tenant(fake_identity: FakeIdentity, fake_smtp: FakeExchange) -> M365Tenant:
    """Tenant + app (SMTP.SendAsApp) + mailbox ``svc@contoso.com`` with FullAccess."""
    tenant_id = str(uuid.uuid4())
    client_id = str(uuid.uuid4())
    secret = make_client_secret()
    mailbox = "svc@contoso.com"
    fake_identity.add_tenant(tenant_id, ("contoso.onmicrosoft.com", "contoso.com"))
    app = fake_identity.register_app(tenant_id, client_id, secret)
    fake_smtp.setup_mailbox(app, mailbox)
    return M365Tenant(
        tenant_id=tenant_id,
        client_id=client_id,
        client_secret=secret,
        mailbox=mailbox,
        object_id=app.object_id,
        authority_host=fake_identity.authority_host,
        smtp_host=fake_smtp.hostname,
        smtp_port=fake_smtp.port,
        app=app,
    )


@pytest.fixture(scope="session")
def fake_webhook_server() -> Iterator[FakeWebhook]:
    """The session's loopback webhook receiver (prefer ``fake_webhook``)."""
    with FakeWebhook() as server:
        yield server


@pytest.fixture
def fake_webhook(fake_webhook_server: FakeWebhook) -> Iterator[FakeWebhook]:
    """The webhook receiver with no records, answers or stalls."""
    fake_webhook_server.reset()
    yield fake_webhook_server
    fake_webhook_server.reset()


@pytest.fixture
def graph_tenant(fake_identity: FakeIdentity, fake_graph: FakeGraph) -> GraphTenant:
    """Tenant + app with the Graph application permission Mail.Send (consented) + mailbox ``svc@contoso.com``."""
    tenant_id = str(uuid.uuid4())
    client_id = str(uuid.uuid4())
    secret = make_client_secret()
    mailbox = "svc@contoso.com"
    fake_identity.add_tenant(tenant_id, ("contoso.onmicrosoft.com", "contoso.com"))
    fake_identity.allow_resource(GRAPH_RESOURCE)
    app = fake_identity.register_app(tenant_id, client_id, secret, roles=(MAIL_SEND,), display_name="MailAdmin Graph")
    fake_graph.add_mailbox(mailbox)
    return GraphTenant(tenant_id, client_id, secret, mailbox, app, fake_graph.url)


ISSUER = "https://oidc.prod-aks.azure.com/11111111-2222-3333-4444-555555555555/"
SUBJECT = "system:serviceaccount:mail:mailadmin"
AUDIENCE = "api://AzureADTokenExchange"


class OidcIssuer:
    """An external OIDC issuer (an AKS cluster's) whose signing key the fake Entra ID trusts.

    ``assertion()`` mints what the platform writes to AZURE_FEDERATED_TOKEN_FILE; ``write()`` puts
    one in ``token_file``, replacing the previous one (the platform's rotation).
    """

    def __init__(self, identity: FakeIdentity, token_file: Path, issuer: str = ISSUER) -> None:
        self.issuer = issuer
        self.token_file = token_file
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        identity.trust_issuer(issuer, self._key.public_key())

    def assertion(
        self,
        *,
        subject: str = SUBJECT,
        audience: str = AUDIENCE,
        lifetime: int = 3600,
        issuer: str | None = None,
        algorithm: str = "RS256",
        not_before: int | None = None,
    ) -> Redacted:
        now = int(time.time())
        claims = {
            "iss": issuer or self.issuer,
            "sub": subject,
            "aud": [audience],
            "iat": now,
            "nbf": now if not_before is None else not_before,
            "exp": now + lifetime,
            "jti": str(uuid.uuid4()),
        }
        key = secrets.token_bytes(32) if algorithm.startswith("HS") else self._key
        return Redacted(jwt.encode(claims, key, algorithm=algorithm, headers={"kid": "aks-key-1"}))

    def write(self, **claims) -> Redacted:
        assertion = self.assertion(**claims)
        self.token_file.write_text(assertion + "\n")
        return assertion


@pytest.fixture
def oidc_issuer(fake_identity: FakeIdentity, tmp_path: Path) -> OidcIssuer:
    """An OIDC issuer trusted by the fake Entra ID, writing to ``tmp_path / "azure-identity-token"``."""
    return OidcIssuer(fake_identity, tmp_path / "azure-identity-token")
