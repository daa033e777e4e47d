"""HTTPS fake of Microsoft Entra ID for MSAL's client-credentials flow.

Contract (see shared/reference/microsoft-protocol-notes.md, sections 1-2):

- Listens on ``127.0.0.1:<ephemeral>`` with TLS from ``tests.fakes.tls``.
- ``GET /<tenant>/v2.0/.well-known/openid-configuration``: the OpenID
  document for a known tenant (GUID or verified domain), endpoints carrying
  the tenant GUID and this server's host and port; 400 ``invalid_tenant``
  AADSTS90002 for an unknown, well-formed tenant; 400 ``invalid_request``
  AADSTS900023 for a malformed one. Repeated slashes are tolerated.
- ``GET /common/discovery/instance`` (api-version 1.0 and 1.1) in Entra's shape.
- ``POST /<tenant>/oauth2/v2.0/token`` (form-encoded client credentials):
  Entra's JSON errors (AADSTS7000215, 7000218, 7000222, 700016, 90002,
  900023, 1002012, 500011, ...) or a Bearer token signed by this fake
  (HS256) that ``verify_token`` accepts.
- Faults injected through ``fail_with``, ``respond_with_status``,
  ``respond_with_non_json`` and ``stall`` last until ``reset()``.
- Every request is recorded with secrets redacted.
- Accepted sockets get ``TCP_NODELAY``; each response leaves in one write, after
  the simulated round trip (``simulate_round_trip``, see ``tests.fakes.loopback``).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.server
import json
import re
import secrets
import ssl
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Self
from urllib.parse import parse_qsl, urlsplit

import trustme

from tests.fakes import client_assertions, tls
from tests.fakes.loopback import LoopbackServer

EXCHANGE_RESOURCE = "https://outlook.office365.com"
EXCHANGE_APP_ID = "00000002-0000-0ff1-ce00-000000000000"
GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
# Application permissions of Microsoft Graph: only Graph tokens carry them (and Exchange's only Exchange's).
GRAPH_ROLES = frozenset({"Mail.Send"})
SMTP_SEND_AS_APP = "SMTP.SendAsApp"
DEFAULT_TOKEN_LIFETIME = 3599
REDACTED = "<redacted>"

Target = Literal["token", "discovery", "any"]

_GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_MULTI_TENANT = frozenset({"common", "organizations", "consumers"})
_SECRET_FIELDS = frozenset({"client_secret", "client_assertion"})
_WELL_KNOWN_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoft.com",
        "login.windows.net",
        "sts.windows.net",
        "login.microsoftonline.us",
        "login.usgovcloudapi.net",
        "login.partner.microsoftonline.cn",
        "login.chinacloudapi.cn",
    }
)

# code -> (HTTP status, "error", description template). 7000215 ... 7000218 come from the
# notes (section 2.4); 900144, 70003, 50059 and 50049 are unverified recollections.
AADSTS_ERRORS: dict[int, tuple[int, str, str]] = {
    7000215: (
        401,
        "invalid_client",
        "Invalid client secret provided. Ensure the secret being sent in the request is the "
        "client secret value, not the client secret ID, for a secret added to app '{app_id}'.",
    ),
    7000222: (
        401,
        "invalid_client",
        "The provided client secret keys for app '{app_id}' are expired. Visit the Azure portal "
        "to create new keys for your app: https://aka.ms/NewClientSecret, or consider using "
        "certificate credentials for added security: https://aka.ms/certCreds.",
    ),
    7000218: (
        401,
        "invalid_client",
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    ),
    700016: (
        400,
        "unauthorized_client",
        "Application with identifier '{app_id}' was not found in the directory '{tenant}'. "
        "This can happen if the application has not been installed by the administrator of the "
        "tenant or consented to by any user in the tenant. You may have sent your authentication "
        "request to the wrong tenant.",
    ),
    90002: (
        400,
        "invalid_request",
        "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are "
        "signing into the correct cloud. Check with your subscription administrator, this may "
        "happen if there are no active subscriptions for the tenant.",
    ),
    900023: (
        400,
        "invalid_request",
        "Specified tenant identifier '{tenant}' is neither a valid DNS name, nor a valid external domain.",
    ),
    1002012: (
        400,
        "invalid_scope",
        "The provided value for scope {scope} is not valid. Client credential flows must have a "
        "scope value with /.default suffixed to the resource identifier (application ID URI).",
    ),
    70011: (
        400,
        "invalid_scope",
        "The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid.",
    ),
    500011: (
        400,
        "invalid_resource",
        "The resource principal named {resource} was not found in the tenant named "
        "{tenant_name}. This can happen if the application has not been installed by the "
        "administrator of the tenant or consented to by any user in the tenant. You might have "
        "sent your authentication request to the wrong tenant.",
    ),
    900144: (
        400,
        "invalid_request",
        "The request body must contain the following parameter: '{param}'.",
    ),
    70003: (
        400,
        "unsupported_grant_type",
        "The app requested an unsupported grant type '{grant_type}'.",
    ),
    50059: (
        400,
        "invalid_request",
        "No tenant-identifying information found in either the request or implied by any provided credentials.",
    ),
    50049: (400, "invalid_instance", "Unknown or invalid instance."),
    # Client assertions (notes section 9).
    700027: (
        401,
        "invalid_client",
        "{reason} [Reason - {reason}, Thumbprint of key used by client: '{thumbprint}', Please visit the "
        "Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{app_id}'.]",
    ),
    700024: (
        400,
        "invalid_client",
        "Client assertion is not within its valid time range. Current time: {now}, assertion valid from "
        "{nbf}, expiry time of assertion {exp}.",
    ),
    700021: (400, "invalid_client", "Client assertion application identifier doesn't match 'client_id' parameter."),
    700211: (
        400,
        "invalid_client",
        "No matching federated identity record found for presented assertion issuer '{issuer}'. Please check "
        "your federated identity credential Subject, Audience and Issuer against the presented assertion.",
    ),
    700212: (
        400,
        "invalid_client",
        "No matching federated identity record found for presented assertion audience '{audience}'. Please "
        "check your federated identity credential Subject, Audience and Issuer against the presented assertion.",
    ),
    700213: (
        400,
        "invalid_client",
        "No matching federated identity record found for presented assertion subject '{subject}'. Please "
        "check your federated identity credential Subject, Audience and Issuer against the presented assertion.",
    ),
    70021: (
        400,
        "invalid_request",
        "No matching federated identity record found for presented assertion. Assertion Issuer: '{issuer}'. "
        "Assertion Subject: '{subject}'. Assertion Audience: '{audience}'.",
    ),
    5002738: (
        400,
        "invalid_client",
        "Invalid JWT token. '{alg}' is not a supported signature algorithm. Supported signing algorithms are: "
        "'RS256, RS384, RS512'",
    ),
}


class Redacted(str):
    """A ``str`` whose ``repr`` hides the value (tokens, secrets in test output)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'<redacted>'"


class InvalidToken(Exception):
    """Raised by ``FakeIdentity.verify_token``; ``reason`` is a short keyword."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Tenant:
    """A directory known to the fake."""

    tenant_id: str
    domains: tuple[str, ...]
    display_name: str
    apps: dict[str, RegisteredApp] = field(default_factory=dict, repr=False)


@dataclass
class RegisteredApp:
    """An app registration plus its enterprise app (service principal).

    ``object_id`` is the enterprise-app object id (the one ``New-ServicePrincipal``
    needs and the token's ``oid``); ``app_object_id`` is the app-registration
    object id, the common mistake. Mutating ``secret``/``secret_expired``/``roles``
    takes effect on the next token request.
    """

    tenant_id: str
    app_id: str
    object_id: str
    app_object_id: str
    display_name: str
    roles: tuple[str, ...]
    secret: str = field(repr=False)
    secret_id: str = ""
    secret_expired: bool = False
    # PEM certificates uploaded under Certificates & secrets > Certificates.
    certificates: list[str] = field(default_factory=list, repr=False)
    federated_credentials: list[FederatedCredential] = field(default_factory=list)
    # Tenants before late 2023 answer every federated mismatch with AADSTS70021.
    legacy_federated_errors: bool = False

    @property
    def client_id(self) -> str:
        return self.app_id


@dataclass(frozen=True)
class FederatedCredential:
    """Certificates & secrets > Federated credentials: the assertion's issuer, subject and audience."""

    issuer: str
    subject: str
    audience: str = "api://AzureADTokenExchange"


@dataclass
class RecordedRequest:
    """One HTTP request as the fake saw it; secrets are replaced by ``<redacted>``."""

    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    had_secret: bool
    headers: dict[str, str]
    kind: str
    status: int | None = None
    # A client assertion's header and claims (never its signature), when one was posted.
    assertion: dict[str, Any] | None = None

    @property
    def is_token_request(self) -> bool:
        return self.kind == "token"


@dataclass
class _Fault:
    kind: Literal["aadsts", "status", "non_json", "stall"]
    on: Target
    times: int | None
    code: int = 0
    status: int = 0
    retry_after: int | None = None
    seconds: float = 0.0

    def applies(self, kind: str) -> bool:
        if self.on == "any":
            return True
        if self.on == "discovery":
            return kind in ("discovery", "instance_discovery", "keys")
        return self.on == kind


@dataclass
class _Reply:
    status: int
    body: bytes
    headers: dict[str, str]


def is_guid(value: str) -> bool:
    """True when ``value`` is a GUID in 8-4-4-4-12 form."""
    return bool(_GUID_RE.match(value))


def is_dns_name(value: str) -> bool:
    """True when ``value`` is a dotted DNS name (at least two labels)."""
    labels = value.rstrip(".").split(".")
    return len(value) <= 253 and len(labels) >= 2 and all(_LABEL_RE.match(x) for x in labels)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _entra_timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _parse_code(code: int | str) -> int:
    text = str(code).upper()
    return int(text[len("AADSTS") :] if text.startswith("AADSTS") else text)


def entra_error(
    code: int,
    *,
    correlation_id: str | None = None,
    error: str | None = None,
    **values: str,
) -> tuple[int, dict[str, Any]]:
    """Return (HTTP status, JSON body) for AADSTS ``code`` in Entra's error shape."""
    status, default_error, template = AADSTS_ERRORS[code]
    defaults = {
        "app_id": "00000000-0000-0000-0000-000000000000",
        "tenant": "",
        "tenant_name": "",
        "scope": "",
        "resource": "",
        "param": "",
        "grant_type": "",
        "reason": "",
        "thumbprint": "",
        "now": "",
        "nbf": "",
        "exp": "",
        "issuer": "",
        "subject": "",
        "audience": "",
        "alg": "",
    }
    defaults.update(values)
    trace_id = str(uuid.uuid4())
    correlation = correlation_id or str(uuid.uuid4())
    stamp = _entra_timestamp()
    description = (
        f"AADSTS{code}: {template.format(**defaults)}\r\nTrace ID: {trace_id}\r\n"
        f"Correlation ID: {correlation}\r\nTimestamp: {stamp}"
    )
    return status, {
        "error": error or default_error,
        "error_description": description,
        "error_codes": [code],
        "timestamp": stamp,
        "trace_id": trace_id,
        "correlation_id": correlation,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    fake: FakeIdentity
    ssl_context: ssl.SSLContext

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (OSError, ssl.SSLError)):
            return
        self.fake._note_error(traceback.format_exc())


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-IIS/10.0"
    sys_version = ""
    timeout = 15
    # Buffered: the status line, the headers and the body leave in one send() when the
    # handler returns (handle_one_request flushes), not one send() each.
    wbufsize = 64 * 1024
    server: _Server

    def setup(self) -> None:
        self.server.fake._accepted(self.request)
        self.request.settimeout(self.timeout)
        self.request = self.server.ssl_context.wrap_socket(self.request, server_side=True)
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with contextlib.suppress(OSError):
                self.request.close()

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        fake = self.server.fake
        generation = fake._network_generation()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            reply = fake._handle(method, self.path, dict(self.headers.items()), body)
        except Exception:
            fake._note_error(traceback.format_exc())
            reply = _Reply(500, b"internal fake error", {"Content-Type": "text/plain"})
        if reply is None:
            self.close_connection = True
            return
        delay = fake._reply_delay(generation)
        if delay and fake._stop.wait(delay):
            self.close_connection = True
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)


class HttpsFake(LoopbackServer):
    """An HTTPS fake on ``https://127.0.0.1:<port>``: ``handler_class`` serves it in a daemon thread.

    ``_stop`` is set when it stops, so that stalled requests wake and end. ``_lock`` guards the
    subclass's records; ``server_errors`` holds the tracebacks of the fake's own failures.
    """

    handler_class: type[http.server.BaseHTTPRequestHandler]

    def __init__(self, *, server_cert: trustme.LeafCert | None = None, round_trip: float = 0.0) -> None:
        super().__init__(round_trip=round_trip)
        self._cert = server_cert
        self._stop = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.RLock()
        self._errors: list[str] = []

    def start(self) -> Self:
        """Bind 127.0.0.1 on an ephemeral port and serve in a daemon thread."""
        if self._server is not None:
            return self
        self._stop.clear()
        server = _Server(("127.0.0.1", 0), self.handler_class)
        server.fake = self
        server.ssl_context = tls.server_ssl_context(self._cert)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake stalled requests and release the port."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stop.set()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return int(self._server.server_address[1])

    @property
    def server_errors(self) -> list[str]:
        """Tracebacks of bugs inside the fake (a test should find none)."""
        with self._lock:
            return list(self._errors)

    def _note_error(self, text: str) -> None:
        with self._lock:
            self._errors.append(text)


class FakeIdentity(HttpsFake):
    """Fake Entra ID token service on ``https://127.0.0.1:<port>``.

    ``authority_host`` + ``"/" + tenant`` is the MSAL authority (use
    ``instance_discovery=False``). Tenants and apps persist across ``reset()``;
    faults, records, ``token_lifetime`` and a simulated round trip do not.
    """

    handler_class = _Handler

    def __init__(
        self,
        *,
        server_cert: trustme.LeafCert | None = None,
        resource: str = EXCHANGE_RESOURCE,
        token_lifetime: int = DEFAULT_TOKEN_LIFETIME,
        round_trip: float = 0.0,
    ) -> None:
        super().__init__(server_cert=server_cert, round_trip=round_trip)
        self.resource = resource.rstrip("/")
        self.default_token_lifetime = token_lifetime
        self.token_lifetime = token_lifetime
        self._key = secrets.token_bytes(32)
        self._tenants: dict[str, Tenant] = {}
        self._extra_resources: set[str] = set()
        self._issuer_keys: dict[str, list] = {}
        self._faults: list[_Fault] = []
        self._requests: list[RecordedRequest] = []
        self._issued = 0

    @property
    def authority_host(self) -> str:
        """``https://127.0.0.1:<port>``, without a trailing slash."""
        return f"https://127.0.0.1:{self.port}"

    def authority(self, tenant: str) -> str:
        """MSAL authority URL for ``tenant``."""
        return f"{self.authority_host}/{tenant}"

    # directory setup

    def add_tenant(
        self,
        tenant_id: str,
        domains: tuple[str, ...] | list[str] = ("contoso.onmicrosoft.com",),
        *,
        display_name: str | None = None,
    ) -> Tenant:
        """Register (or replace) a tenant; ``tenant_id`` must be a GUID."""
        if not is_guid(tenant_id):
            raise ValueError(f"tenant_id must be a GUID: {tenant_id!r}")
        doms = tuple(d.lower() for d in domains)
        name = display_name or (doms[0].split(".")[0].capitalize() if doms else "Tenant")
        with self._lock:
            old = self._tenants.get(tenant_id.lower())
            tenant = Tenant(tenant_id.lower(), doms, name)
            if old is not None:
                tenant.apps = old.apps
            self._tenants[tenant.tenant_id] = tenant
            return tenant

    def register_app(
        self,
        tenant_id: str,
        client_id: str,
        secret: str,
        roles: tuple[str, ...] | list[str] = (SMTP_SEND_AS_APP,),
        secret_expired: bool = False,
        *,
        display_name: str = "MailAdmin SMTP",
        object_id: str | None = None,
    ) -> RegisteredApp:
        """Register an app with one client secret in a known tenant."""
        with self._lock:
            tenant = self._find_tenant(tenant_id)
            if tenant is None:
                raise KeyError(f"unknown tenant {tenant_id!r}; call add_tenant() first")
            app = RegisteredApp(
                tenant_id=tenant.tenant_id,
                app_id=client_id.lower(),
                object_id=(object_id or str(uuid.uuid4())).lower(),
                app_object_id=str(uuid.uuid4()),
                display_name=display_name,
                roles=tuple(roles),
                secret=secret,
                secret_id=str(uuid.uuid4()),
                secret_expired=secret_expired,
            )
            tenant.apps[app.app_id] = app
            return app

    def upload_certificate(self, app: RegisteredApp, certificate_pem: str) -> None:
        """Certificates & secrets > Certificates > Upload certificate (the public PEM)."""
        with self._lock:
            app.certificates.append(certificate_pem)

    def add_federated_credential(
        self, app: RegisteredApp, issuer: str, subject: str, audience: str = "api://AzureADTokenExchange"
    ) -> FederatedCredential:
        """Certificates & secrets > Federated credentials > Add credential."""
        credential = FederatedCredential(issuer, subject, audience)
        with self._lock:
            app.federated_credentials.append(credential)
        return credential

    def trust_issuer(self, issuer: str, public_key: Any) -> None:
        """The signing key an external OIDC issuer publishes (what Entra ID reads from its JWKS)."""
        with self._lock:
            self._issuer_keys.setdefault(issuer, []).append(public_key)

    def allow_resource(self, resource: str) -> None:
        """Let tokens be issued for another resource (e.g. Graph) too."""
        with self._lock:
            self._extra_resources.add(resource.rstrip("/").lower())

    def tenant(self, tenant: str) -> Tenant | None:
        """Look a tenant up by GUID or domain."""
        with self._lock:
            return self._find_tenant(tenant)

    def _find_tenant(self, key: str) -> Tenant | None:
        key = key.lower()
        if key in self._tenants:
            return self._tenants[key]
        for tenant in reversed(list(self._tenants.values())):
            if key in tenant.domains:
                return tenant
        return None

    # tokens

    def issue_token(
        self,
        app: RegisteredApp,
        *,
        resource: str | None = None,
        lifetime: int | None = None,
        **claims: Any,
    ) -> str:
        """Mint a token for ``app`` directly (no HTTP); ``claims`` override defaults.

        The result is a ``Redacted`` str, so it never shows up in assertion output.
        """
        with self._lock:
            life = self.token_lifetime if lifetime is None else lifetime
        now = int(time.time())
        tid = app.tenant_id
        audience = (resource or self.resource).rstrip("/")
        for_graph = audience.lower() in (GRAPH_RESOURCE, GRAPH_APP_ID)
        payload: dict[str, Any] = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{tid}/",
            "iat": now,
            "nbf": now,
            "exp": now + life,
            "app_displayname": app.display_name,
            "appid": app.app_id,
            "appidacr": "1",
            "idp": f"https://sts.windows.net/{tid}/",
            "idtyp": "app",
            "oid": app.object_id,
            "roles": [role for role in app.roles if (role in GRAPH_ROLES) == for_graph],
            "sub": app.object_id,
            "tid": tid,
            "uti": _b64url(secrets.token_bytes(16)),
            "ver": "1.0",
        }
        payload.update(claims)
        header = {"typ": "JWT", "alg": "HS256", "kid": "fake-entra"}
        signing_input = (
            _b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64url(json.dumps(payload, separators=(",", ":")).encode())
        )
        with self._lock:
            key = self._key
        signature = hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()
        return Redacted(f"{signing_input}.{_b64url(signature)}")

    def verify_token(self, token: str) -> dict[str, Any]:
        """Return the claims of a token this fake signed; raise ``InvalidToken`` otherwise.

        Checks structure, HS256 signature, ``exp`` (strict) and ``nbf``
        (5 minutes skew). Audience, roles and tenant are the caller's business.
        """
        parts = token.split(".")
        if len(parts) != 3:
            raise InvalidToken("malformed")
        try:
            header = json.loads(_b64url_decode(parts[0]))
            claims = json.loads(_b64url_decode(parts[1]))
            signature = _b64url_decode(parts[2])
        except (ValueError, TypeError) as exc:
            raise InvalidToken("malformed") from exc
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise InvalidToken("malformed")
        if header.get("alg") != "HS256":
            raise InvalidToken("bad_signature")
        with self._lock:
            key = self._key
        expected = hmac.new(key, f"{parts[0]}.{parts[1]}".encode("ascii"), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, signature):
            raise InvalidToken("bad_signature")
        now = time.time()
        if not isinstance(claims.get("exp"), (int, float)) or now >= claims["exp"]:
            raise InvalidToken("expired")
        if isinstance(claims.get("nbf"), (int, float)) and now + 300 < claims["nbf"]:
            raise InvalidToken("not_yet_valid")
        return claims

    def rotate_signing_key(self) -> None:
        """Invalidate every token issued so far."""
        with self._lock:
            self._key = secrets.token_bytes(32)

    # faults

    def fail_with(self, code: int | str, *, on: Target = "token", times: int | None = None) -> None:
        """Answer matching requests with AADSTS ``code`` (e.g. ``"AADSTS7000215"``)."""
        number = _parse_code(code)
        if number not in AADSTS_ERRORS:
            raise ValueError(f"unsupported AADSTS code {code!r}")
        self._add_fault(_Fault("aadsts", on, times, code=number))

    def respond_with_status(
        self,
        status: int = 503,
        *,
        on: Target = "token",
        retry_after: int | None = None,
        times: int | None = None,
    ) -> None:
        """Answer matching requests with a bare HTTP ``status`` (HTML body)."""
        self._add_fault(_Fault("status", on, times, status=status, retry_after=retry_after))

    def respond_with_non_json(self, *, on: Target = "token", times: int | None = None) -> None:
        """Answer matching requests 200 with an HTML page (e.g. a captive proxy)."""
        self._add_fault(_Fault("non_json", on, times))

    def stall(self, seconds: float, *, on: Target = "token", times: int | None = None) -> None:
        """Delay matching requests by ``seconds`` before answering; ``stop()`` cuts it short."""
        self._add_fault(_Fault("stall", on, times, seconds=seconds))

    def _add_fault(self, fault: _Fault) -> None:
        if fault.on not in ("token", "discovery", "any"):
            raise ValueError(f"on must be 'token', 'discovery' or 'any', not {fault.on!r}")
        with self._lock:
            self._faults.append(fault)

    def _take_faults(self, kind: str) -> tuple[float, _Fault | None]:
        with self._lock:
            delay = 0.0
            answer: _Fault | None = None
            for fault in list(self._faults):
                if not fault.applies(kind):
                    continue
                if fault.kind == "stall":
                    if delay:
                        continue
                    delay = fault.seconds
                elif answer is None:
                    answer = fault
                else:
                    continue
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
            return delay, answer

    # records

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def token_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.kind == "token"]

    @property
    def discovery_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.kind in ("discovery", "instance_discovery")]

    @property
    def issued_tokens(self) -> int:
        with self._lock:
            return self._issued

    def reset(self, everything: bool = False) -> None:
        """Clear faults and records, restore ``token_lifetime``; tenants/apps too if ``everything``."""
        with self._lock:
            self._faults.clear()
            self._requests.clear()
            self._errors.clear()
            self._issued = 0
            self.token_lifetime = self.default_token_lifetime
            self._reset_network()
            if everything:
                self._tenants.clear()
                self._extra_resources.clear()
                self._issuer_keys.clear()

    # request handling

    def _base_url(self, headers: dict[str, str]) -> str:
        host = {k.lower(): v for k, v in headers.items()}.get("host", "")
        if self._server is not None and host.lower() in (
            f"127.0.0.1:{self.port}",
            f"localhost:{self.port}",
        ):
            return f"https://{host.lower()}"
        return self.authority_host

    def _handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> _Reply | None:
        split = urlsplit(raw_path)
        path = re.sub(r"/{2,}", "/", split.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        lower_headers = {k.lower(): v for k, v in headers.items()}
        form: dict[str, str] = {}
        if "x-www-form-urlencoded" in lower_headers.get("content-type", ""):
            form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        had_secret = bool(form.get("client_secret"))
        shown_form = {k: (REDACTED if k in _SECRET_FIELDS else v) for k, v in form.items()}
        shown_headers = {k: (REDACTED if k.lower() == "authorization" else v) for k, v in headers.items()}
        segments = [s for s in path.split("/") if s]
        kind = self._classify(method, segments)
        record = RecordedRequest(method, path, query, shown_form, had_secret, shown_headers, kind)
        parts = client_assertions.unverified_parts(form.get("client_assertion", ""))
        if parts is not None:
            record.assertion = {"header": parts[0], "claims": parts[1]}
        with self._lock:
            self._requests.append(record)
        correlation = lower_headers.get("client-request-id") or str(uuid.uuid4())

        delay, fault = self._take_faults(kind)
        if delay and self._stop.wait(delay):
            record.status = None
            return None
        if fault is not None:
            reply = self._fault_reply(fault, segments, form, correlation)
        elif kind == "discovery":
            reply = self._openid_configuration(segments[0], headers, correlation)
        elif kind == "instance_discovery":
            reply = self._instance_discovery(query, headers, correlation)
        elif kind == "keys":
            reply = _json_reply(200, {"keys": []}, cache="max-age=86400, private")
        elif kind == "token":
            reply = self._token(segments[0], form, correlation, self._base_url(headers))
        else:
            reply = _Reply(
                404,
                b"<html><body><h1>404 - Not Found</h1></body></html>",
                {"Content-Type": "text/html"},
            )
        record.status = reply.status
        return reply

    @staticmethod
    def _classify(method: str, segments: list[str]) -> str:
        if method == "GET" and segments[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            return "discovery"
        if method == "GET" and [s.lower() for s in segments] == ["common", "discovery", "instance"]:
            return "instance_discovery"
        if method == "GET" and segments[1:] == ["discovery", "v2.0", "keys"]:
            return "keys"
        if method == "POST" and segments[1:] == ["oauth2", "v2.0", "token"]:
            return "token"
        return "other"

    def _fault_reply(self, fault: _Fault, segments: list[str], form: dict[str, str], correlation: str) -> _Reply:
        if fault.kind == "status":
            headers = {"Content-Type": "text/html; charset=utf-8"}
            if fault.retry_after is not None:
                headers["Retry-After"] = str(fault.retry_after)
            text = http.server.BaseHTTPRequestHandler.responses.get(fault.status, ("Error",))[0]
            body = f"<html><body><h1>{fault.status} {text}</h1></body></html>".encode()
            return _Reply(fault.status, body, headers)
        if fault.kind == "non_json":
            body = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>Proxy</body></html>"
            return _Reply(200, body, {"Content-Type": "text/html; charset=utf-8"})
        tenant_key = segments[0] if segments else ""
        tenant = self.tenant(tenant_key) if tenant_key else None
        scope = form.get("scope", "")
        resource = scope[: -len("/.default")] if scope.endswith("/.default") else scope
        status, body = entra_error(
            fault.code,
            correlation_id=correlation,
            app_id=form.get("client_id", "00000000-0000-0000-0000-000000000000"),
            tenant=tenant_key,
            tenant_name=tenant.display_name if tenant else tenant_key,
            scope=scope,
            resource=resource or self.resource,
            param="scope",
            grant_type=form.get("grant_type", ""),
        )
        return _json_reply(status, body, cache="no-store, no-cache")

    def _openid_configuration(self, tenant_key: str, headers: dict[str, str], correlation: str) -> _Reply:
        base = self._base_url(headers)
        if tenant_key.lower() in _MULTI_TENANT:
            tid = tenant_key.lower()
            issuer = "https://login.microsoftonline.com/{tenantid}/v2.0"
            region: str | None = None
        elif not (is_guid(tenant_key) or is_dns_name(tenant_key)):
            status, body = entra_error(900023, correlation_id=correlation, tenant=tenant_key)
            return _json_reply(status, body, cache="no-store, no-cache")
        else:
            tenant = self.tenant(tenant_key)
            if tenant is None:
                status, body = entra_error(90002, correlation_id=correlation, error="invalid_tenant", tenant=tenant_key)
                return _json_reply(status, body, cache="no-store, no-cache")
            tid = tenant.tenant_id
            issuer = f"https://login.microsoftonline.com/{tid}/v2.0"
            region = "WW"
        doc = {
            "token_endpoint": f"{base}/{tid}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/{tid}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": issuer,
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
            "authorization_endpoint": f"{base}/{tid}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/{tid}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/{tid}/oauth2/v2.0/logout",
            "claims_supported": [
                "sub",
                "iss",
                "cloud_instance_name",
                "cloud_instance_host_name",
                "cloud_graph_host_name",
                "msgraph_host",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "acr",
                "nonce",
                "preferred_username",
                "name",
                "tid",
                "ver",
                "at_hash",
                "c_hash",
                "email",
            ],
            "kerberos_endpoint": f"{base}/{tid}/kerberos",
            "tenant_region_scope": region,
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }
        return _json_reply(200, doc, cache="max-age=86400, private")

    def _instance_discovery(self, query: dict[str, str], headers: dict[str, str], correlation: str) -> _Reply:
        endpoint = query.get("authorization_endpoint", "")
        parsed = urlsplit(endpoint)
        netloc = parsed.netloc.lower()
        own = {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}
        segments = [s for s in parsed.path.split("/") if s]
        if parsed.scheme != "https" or not segments:
            status, body = entra_error(900144, correlation_id=correlation, param="authorization_endpoint")
            return _json_reply(status, body, cache="no-store, no-cache")
        if netloc not in own and netloc not in _WELL_KNOWN_HOSTS:
            status, body = entra_error(50049, correlation_id=correlation)
            return _json_reply(status, body, cache="no-store, no-cache")
        version = query.get("api-version", "1.0")
        doc: dict[str, Any] = {
            "tenant_discovery_endpoint": (f"https://{netloc}/{segments[0]}/v2.0/.well-known/openid-configuration"),
            "api-version": version,
        }
        if version == "1.1":
            doc["metadata"] = [
                {
                    "preferred_network": "login.microsoftonline.com",
                    "preferred_cache": "login.windows.net",
                    "aliases": [
                        "login.microsoftonline.com",
                        "login.windows.net",
                        "login.microsoft.com",
                        "sts.windows.net",
                    ],
                },
                {
                    "preferred_network": f"127.0.0.1:{self.port}",
                    "preferred_cache": f"127.0.0.1:{self.port}",
                    "aliases": sorted(own),
                },
            ]
        return _json_reply(200, doc, cache="max-age=86400, private")

    def _token(self, tenant_key: str, form: dict[str, str], correlation: str, base: str = "") -> _Reply:
        def fail(code: int, **values: str) -> _Reply:
            status, body = entra_error(code, correlation_id=correlation, **values)
            return _json_reply(status, body, cache="no-store, no-cache")

        if not (is_guid(tenant_key) or is_dns_name(tenant_key) or tenant_key.lower() in _MULTI_TENANT):
            return fail(900023, tenant=tenant_key)
        grant_type = form.get("grant_type", "")
        if not grant_type:
            return fail(900144, param="grant_type")
        if grant_type != "client_credentials":
            return fail(70003, grant_type=grant_type)
        client_id = form.get("client_id", "")
        if not client_id:
            return fail(900144, param="client_id")
        if tenant_key.lower() in _MULTI_TENANT:
            return fail(50059)
        with self._lock:
            tenant = self._find_tenant(tenant_key)
            app = tenant.apps.get(client_id.lower()) if tenant else None
        if tenant is None:
            return fail(90002, tenant=tenant_key)
        if app is None:
            return fail(700016, app_id=client_id, tenant=tenant_key)
        if form.get("client_assertion"):
            endpoint = f"{base or self.authority_host}/{tenant_key}/oauth2/v2.0/token"
            rejection = self._judge_assertion(app, form, endpoint)
            if rejection is not None:
                return fail(rejection.code, **rejection.values)
        else:
            secret = form.get("client_secret", "")
            if not secret:
                return fail(7000218)
            if not hmac.compare_digest(secret.encode(), app.secret.encode()):
                return fail(7000215, app_id=app.app_id)
            if app.secret_expired:
                return fail(7000222, app_id=app.app_id)
        scope = form.get("scope", "").strip()
        if not scope:
            return fail(900144, param="scope")
        if len(scope.split()) > 1:
            return fail(70011, scope=scope)
        if not scope.endswith("/.default"):
            return fail(1002012, scope=scope)
        resource = scope[: -len("/.default")].rstrip("/")
        with self._lock:
            allowed = {self.resource.lower(), EXCHANGE_APP_ID} | self._extra_resources
        if resource.lower() not in allowed:
            return fail(500011, resource=resource, tenant_name=tenant.display_name, tenant=tenant_key)
        with self._lock:
            lifetime = self.token_lifetime
            self._issued += 1
        token = self.issue_token(app, resource=resource, lifetime=lifetime)
        body = {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": token,
        }
        return _json_reply(200, body, cache="no-store, no-cache")


    def _judge_assertion(
        self, app: RegisteredApp, form: dict[str, str], endpoint: str
    ) -> client_assertions.Rejection | None:
        assertion = form["client_assertion"]
        if form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            return client_assertions.Rejection(900144, {"param": "client_assertion_type"})
        parts = client_assertions.unverified_parts(assertion)
        if parts is None:
            return client_assertions.Rejection(5002738, {"alg": "(not a JWT)"})
        header, claims = parts
        with self._lock:
            pems = list(app.certificates)
            credentials = list(app.federated_credentials)
            keys = {issuer: list(values) for issuer, values in self._issuer_keys.items()}
        if "x5t" in header or "x5t#S256" in header:
            return client_assertions.judge_certificate(app.app_id, pems, assertion, header, claims, endpoint)
        return client_assertions.judge_federated(
            credentials, keys, assertion, header, claims, legacy=app.legacy_federated_errors
        )


def _json_reply(status: int, body: dict[str, Any], *, cache: str) -> _Reply:
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Cache-Control": cache,
        "x-ms-request-id": str(uuid.uuid4()),
    }
    if cache.startswith("no-store"):
        headers["Pragma"] = "no-cache"
        headers["Expires"] = "-1"
    return _Reply(status, json.dumps(body).encode("utf-8"), headers)
