"""The fakes answer the real, unmodified msal / requests / smtplib as Microsoft does."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import smtplib
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msal
import pytest
import requests

from tests.fakes import tls
from tests.fakes.fixtures import M365Tenant
from tests.fakes.identity import EXCHANGE_RESOURCE, FakeIdentity, InvalidToken, Redacted
from tests.fakes.smtp import FakeExchange, SilentServer, parse_xoauth2

SCOPE = f"{EXCHANGE_RESOURCE}/.default"
MESSAGE = "From: svc@contoso.com\r\nTo: x@example.com\r\nSubject: hi\r\n\r\nbody\r\n"


@pytest.fixture(autouse=True)
def _requests_honours_verify(no_requests_ca_env: None) -> None:
    """msal's ``verify=`` only works when REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE are unset."""


def make_app(
    authority: str, client_id: str, secret: str | None, ca: Path, **kwargs: Any
) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        client_id,
        client_credential=secret,
        authority=authority,
        instance_discovery=False,
        verify=str(ca),
        timeout=kwargs.pop("timeout", 5),
        **kwargs,
    )


def without_token(result: dict[str, Any]) -> dict[str, Any]:
    """The msal result minus the access token, safe to show in assertion output."""
    return {k: v for k, v in result.items() if k != "access_token"}


def get_token(t: M365Tenant, ca: Path, scope: str = SCOPE) -> str:
    result = make_app(t.authority, t.client_id, t.client_secret, ca).acquire_token_for_client(scopes=[scope])
    assert "access_token" in result, without_token(result)
    return Redacted(result["access_token"])


def xoauth2(mailbox: str, token: str) -> Callable[..., str]:
    return lambda challenge=None: f"user={mailbox}\x01auth=Bearer {token}\x01\x01"


def smtp_session(fake: FakeExchange, ca: Path, *, ehlo_after_tls: bool = True) -> smtplib.SMTP:
    client = smtplib.SMTP(fake.hostname, fake.port, timeout=5)
    client.ehlo()
    client.starttls(context=ssl.create_default_context(cafile=str(ca)))
    if ehlo_after_tls:
        client.ehlo()
    return client


@pytest.fixture
def smtp_client(fake_smtp: FakeExchange, ca_bundle_path: Path) -> Iterator[smtplib.SMTP]:
    client = smtp_session(fake_smtp, ca_bundle_path)
    yield client
    client.close()


# --- identity: msal happy path and discovery ---------------------------------


def test_msal_client_credentials_success(
    fake_identity: FakeIdentity, m365_tenant: M365Tenant, ca_bundle_path: Path
) -> None:
    result = make_app(
        m365_tenant.authority, m365_tenant.client_id, m365_tenant.client_secret, ca_bundle_path
    ).acquire_token_for_client(scopes=[SCOPE])

    assert result.get("token_type") == "Bearer"
    assert result.get("expires_in") == 3599
    assert result.get("token_source") == "identity_provider"
    claims = fake_identity.verify_token(result["access_token"])
    assert claims["aud"] == EXCHANGE_RESOURCE
    assert claims["iss"] == f"https://sts.windows.net/{m365_tenant.tenant_id}/"
    assert claims["tid"] == m365_tenant.tenant_id
    assert claims["appid"] == m365_tenant.client_id
    assert claims["oid"] == m365_tenant.object_id
    assert claims["roles"] == ["SMTP.SendAsApp"]
    assert claims["exp"] - claims["iat"] == 3599
    assert fake_identity.issued_tokens == 1

    discovery, token = fake_identity.requests
    assert (discovery.method, discovery.path, discovery.status) == (
        "GET",
        f"/{m365_tenant.tenant_id}/v2.0/.well-known/openid-configuration",
        200,
    )
    assert (token.method, token.path, token.status) == (
        "POST",
        f"/{m365_tenant.tenant_id}/oauth2/v2.0/token",
        200,
    )
    assert fake_identity.token_requests == [token]
    assert token.form["grant_type"] == "client_credentials"
    assert token.form["scope"] == SCOPE
    assert token.form["client_secret"] == "<redacted>"
    assert token.had_secret is True
    assert token.headers.get("x-client-sku") == "MSAL.Python"
    leaked = m365_tenant.client_secret in repr(fake_identity.requests) + repr(m365_tenant)
    assert not leaked, "client secret leaked into the request records"


def test_discovery_document_shape(fake_identity: FakeIdentity, m365_tenant: M365Tenant, ca_bundle_path: Path) -> None:
    url = f"{fake_identity.authority_host}/contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration"
    response = requests.get(url, verify=str(ca_bundle_path), timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.headers["Cache-Control"] == "max-age=86400, private"
    doc = response.json()
    base = f"{fake_identity.authority_host}/{m365_tenant.tenant_id}"
    assert doc["token_endpoint"] == f"{base}/oauth2/v2.0/token"
    assert doc["authorization_endpoint"] == f"{base}/oauth2/v2.0/authorize"
    assert doc["jwks_uri"] == f"{base}/discovery/v2.0/keys"
    assert doc["issuer"] == f"https://login.microsoftonline.com/{m365_tenant.tenant_id}/v2.0"
    assert doc["tenant_region_scope"] == "WW"
    assert doc["cloud_instance_name"] == "microsoftonline.com"


def test_msal_by_domain_and_trailing_slash(
    fake_identity: FakeIdentity, m365_tenant: M365Tenant, ca_bundle_path: Path
) -> None:
    authority = f"{m365_tenant.authority_host}/contoso.onmicrosoft.com/"
    app = make_app(authority, m365_tenant.client_id, m365_tenant.client_secret, ca_bundle_path)
    assert app.authority.tenant == m365_tenant.tenant_id
    result = app.acquire_token_for_client(scopes=[SCOPE])
    assert "access_token" in result, without_token(result)
    assert fake_identity.requests[0].path == "/contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration"
    assert fake_identity.token_requests[0].path == f"/{m365_tenant.tenant_id}/oauth2/v2.0/token"


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_instance_discovery(fake_identity: FakeIdentity, ca_bundle_path: Path, version: str) -> None:
    auth_endpoint = f"{fake_identity.authority_host}/contoso.onmicrosoft.com/oauth2/v2.0/authorize"
    response = requests.get(
        f"{fake_identity.authority_host}/common/discovery/instance",
        params={"api-version": version, "authorization_endpoint": auth_endpoint},
        verify=str(ca_bundle_path),
        timeout=5,
    )
    assert response.status_code == 200
    body = response.json()
    assert body["tenant_discovery_endpoint"] == (
        f"{fake_identity.authority_host}/contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration"
    )
    assert body["api-version"] == version
    assert ("metadata" in body) is (version == "1.1")


# --- identity: errors ----------------------------------------------------------


def test_wrong_secret_gives_7000215(m365_tenant: M365Tenant, ca_bundle_path: Path) -> None:
    result = make_app(
        m365_tenant.authority, m365_tenant.client_id, "not-the-secret", ca_bundle_path
    ).acquire_token_for_client(scopes=[SCOPE])
    assert result.get("error") == "invalid_client"
    assert result.get("error_codes") == [7000215]
    assert result["error_description"].startswith(
        "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request "
        f"is the client secret value, not the client secret ID, for a secret added to app "
        f"'{m365_tenant.client_id}'.\r\nTrace ID: "
    )
    assert "\r\nCorrelation ID: " in result["error_description"]
    assert result["error_uri"] == "https://login.microsoftonline.com/error?code=7000215"


def test_unknown_tenant_fails_in_constructor(fake_identity: FakeIdentity, ca_bundle_path: Path) -> None:
    tenant = str(uuid.uuid4())
    with pytest.raises(ValueError, match="Unable to get authority configuration") as excinfo:
        make_app(f"{fake_identity.authority_host}/{tenant}", str(uuid.uuid4()), "s", ca_bundle_path)
    context = str(excinfo.value.__context__)
    assert "HTTP status: 400" in context
    body = json.loads(context.split("Error: ", 1)[1])
    assert body["error"] == "invalid_tenant"
    assert body["error_codes"] == [90002]
    assert body["error_description"].startswith(f"AADSTS90002: Tenant '{tenant}' not found.")
    assert fake_identity.token_requests == []


def test_malformed_tenant_gives_900023(fake_identity: FakeIdentity, ca_bundle_path: Path) -> None:
    with pytest.raises(ValueError) as excinfo:
        make_app(f"{fake_identity.authority_host}/not_a_tenant", str(uuid.uuid4()), "s", ca_bundle_path)
    assert "AADSTS900023: Specified tenant identifier 'not_a_tenant' is neither" in str(excinfo.value.__context__)


def test_correlation_id_echoes_client_request_id(
    fake_identity: FakeIdentity, m365_tenant: M365Tenant, ca_bundle_path: Path
) -> None:
    request_id = str(uuid.uuid4())
    response = requests.post(
        f"{m365_tenant.authority}/oauth2/v2.0/token",
        data={"client_id": m365_tenant.client_id, "grant_type": "client_credentials", "scope": SCOPE},
        headers={"client-request-id": request_id},
        verify=str(ca_bundle_path),
        timeout=5,
    )
    assert response.status_code == 401
    assert response.headers["Cache-Control"] == "no-store, no-cache"
    body = response.json()
    assert body["error_codes"] == [7000218]
    assert body["correlation_id"] == request_id
    assert f"Correlation ID: {request_id}" in body["error_description"]
    assert fake_identity.token_requests[0].had_secret is False


@pytest.mark.parametrize(
    ("change", "status", "error", "code"),
    [
        ({"client_id": "11111111-2222-3333-4444-555555555555"}, 400, "unauthorized_client", 700016),
        ({"scope": f"{EXCHANGE_RESOURCE}/SMTP.Send"}, 400, "invalid_scope", 1002012),
        ({"scope": "https://graph.microsoft.com/.default"}, 400, "invalid_resource", 500011),
        ({"client_secret": ""}, 401, "invalid_client", 7000218),
    ],
)
def test_token_endpoint_validation(
    m365_tenant: M365Tenant,
    ca_bundle_path: Path,
    change: dict[str, str],
    status: int,
    error: str,
    code: int,
) -> None:
    form = {
        "client_id": m365_tenant.client_id,
        "grant_type": "client_credentials",
        "client_secret": m365_tenant.client_secret,
        "scope": SCOPE,
    }
    form.update(change)
    response = requests.post(
        f"{m365_tenant.authority}/oauth2/v2.0/token", data=form, verify=str(ca_bundle_path), timeout=5
    )
    body = response.json()
    assert (response.status_code, body.get("error"), body.get("error_codes")) == (status, error, [code])
    assert body["error_description"].startswith(f"AADSTS{code}: ")


def test_expired_secret_gives_7000222(m365_tenant: M365Tenant, ca_bundle_path: Path) -> None:
    m365_tenant.app.secret_expired = True
    result = make_app(
        m365_tenant.authority, m365_tenant.client_id, m365_tenant.client_secret, ca_bundle_path
    ).acquire_token_for_client(scopes=[SCOPE])
    assert (result.get("error"), result.get("error_codes")) == ("invalid_client", [7000222])
    assert "are expired" in result["error_description"]


# --- identity: faults ---------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("AADSTS7000215", "invalid_client"),
        ("AADSTS7000222", "invalid_client"),
        ("AADSTS700016", "unauthorized_client"),
        ("AADSTS90002", "invalid_request"),
        ("AADSTS900023", "invalid_request"),
        ("AADSTS1002012", "invalid_scope"),
        ("AADSTS70011", "invalid_scope"),
        ("AADSTS500011", "invalid_resource"),
        ("AADSTS7000218", "invalid_client"),
    ],
)
def test_fail_with(
    fake_identity: FakeIdentity, m365_tenant: M365Tenant, ca_bundle_path: Path, code: str, error: str
) -> None:
    fake_identity.fail_with(code)
    result = make_app(
        m365_tenant.authority, m365_tenant.client_id, m365_tenant.client_secret, ca_bundle_path
    ).acquire_token_for_client(scopes=[SCOPE])
    assert result.get("error") == error
    assert result.get("error_codes") == [int(code[6:])]
    assert result["error_description"].startswith(f"{code}: ")
    fake_identity.reset()
    assert fake_identity.tenant(m365_tenant.tenant_id) is not None


def test_token_5xx_raises_msal_service_error(
    fake_identity: FakeIdentity, m365_tenant: M365Tenant, ca_bundle_path: Path
) -> None:
    fake_identity.respond_with_status(503)
    app = make_app(m365_tenant.authority, m365_tenant.client_id, m365_tenant.client_secret, ca_bundle_path)
    with pytest.raises(msal.exceptions.MsalServiceError, match="HTTP Error: 503"):
        app.acquire_token_for_client(scopes=[SCOPE])


def test_discovery_5xx_fails_constructor(
    fake_identity: FakeIdentity, m365_tenant: M365Tenant, ca_bundle_path: Path
) -> None:
    fake_identity.respond_with_status(503, on="discovery")
    with pytest.raises(msal.exceptions.MsalServiceError, match="HTTP Error: 503"):
        make_app(m365_tenant.authority, m365_tenant.client_id, m365_tenant.client_secret, ca_bundle_path)


def test_non_json_token_reply(fake_identity: FakeIdentity, m365_tenant: M365Tenant, ca_bundle_path: Path) -> None:
    fake_identity.respond_with_non_json()
    app = make_app(m365_tenant.authority, m365_tenant.client_id, m365_tenant.client_secret, ca_bundle_path)
    with pytest.raises(json.JSONDecodeError):
        app.acquire_token_for_client(scopes=[SCOPE])


def test_stall_times_out_client(fake_identity: FakeIdentity, m365_tenant: M365Tenant, ca_bundle_path: Path) -> None:
    fake_identity.stall(3)
    app = make_app(m365_tenant.authority, m365_tenant.client_id, m365_tenant.client_secret, ca_bundle_path, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        app.acquire_token_for_client(scopes=[SCOPE])
    assert time.monotonic() - started < 2
    fake_identity.reset()
    app = make_app(m365_tenant.authority, m365_tenant.client_id, m365_tenant.client_secret, ca_bundle_path)
    result = app.acquire_token_for_client(scopes=[SCOPE])
    assert "access_token" in result, without_token(result)


def test_stall_does_not_block_other_requests_or_stop(ca_bundle_path: Path) -> None:
    fake = FakeIdentity().start()
    fake.stall(30, on="any", times=1)
    url = f"{fake.authority_host}/common/discovery/instance"

    def stalled() -> None:
        with contextlib.suppress(requests.RequestException):
            requests.get(url, verify=str(ca_bundle_path), timeout=10)

    thread = threading.Thread(target=stalled, daemon=True)
    thread.start()
    deadline = time.monotonic() + 2
    while not fake.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    response = requests.get(
        f"{fake.authority_host}/x/v2.0/.well-known/openid-configuration", verify=str(ca_bundle_path), timeout=2
    )
    assert response.status_code == 400
    port = fake.port
    started = time.monotonic()
    fake.stop()
    assert time.monotonic() - started < 2
    thread.join(timeout=5)
    assert not thread.is_alive()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_untrusted_certificate_is_refused(ca_bundle_path: Path) -> None:
    with FakeIdentity(server_cert=tls.untrusted_server_cert()) as fake:
        fake.add_tenant(str(uuid.uuid4()))
        with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
            make_app(f"{fake.authority_host}/contoso.onmicrosoft.com", "c", "s", ca_bundle_path)
        assert fake.server_errors == []


def test_requests_ca_bundle_env_overrides_msal_verify(
    monkeypatch: pytest.MonkeyPatch, m365_tenant: M365Tenant, ca_bundle_path: Path, tmp_path: Path
) -> None:
    other = tls.write_ca_bundle(tmp_path / "other.pem", tls.untrusted_ca())
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other))
    with pytest.raises(requests.exceptions.SSLError):
        make_app(m365_tenant.authority, m365_tenant.client_id, m365_tenant.client_secret, ca_bundle_path)

    session = requests.Session()
    session.request = functools.partial(session.request, verify=str(ca_bundle_path), timeout=5)  # type: ignore[method-assign]
    app = msal.ConfidentialClientApplication(
        m365_tenant.client_id,
        client_credential=m365_tenant.client_secret,
        authority=m365_tenant.authority,
        instance_discovery=False,
        http_client=session,
    )
    result = app.acquire_token_for_client(scopes=[SCOPE])
    assert "access_token" in result, without_token(result)


def test_tokens_verify_and_reset(fake_identity: FakeIdentity, m365_tenant: M365Tenant) -> None:
    token = fake_identity.issue_token(m365_tenant.app)
    assert fake_identity.verify_token(token)["appid"] == m365_tenant.client_id
    head, payload, signature = token.split(".")
    with pytest.raises(InvalidToken, match="bad_signature"):
        fake_identity.verify_token(f"{head}.{payload}.{signature[::-1]}")
    with pytest.raises(InvalidToken, match="expired"):
        fake_identity.verify_token(fake_identity.issue_token(m365_tenant.app, lifetime=-1))
    fake_identity.token_lifetime = 120
    fake_identity.reset()
    assert fake_identity.token_lifetime == 3599
    assert fake_identity.tenant("contoso.onmicrosoft.com") is not None
    fake_identity.reset(everything=True)
    assert fake_identity.tenant(m365_tenant.tenant_id) is None


def test_short_token_lifetime(fake_identity: FakeIdentity, m365_tenant: M365Tenant, ca_bundle_path: Path) -> None:
    fake_identity.token_lifetime = 60
    result = make_app(
        m365_tenant.authority, m365_tenant.client_id, m365_tenant.client_secret, ca_bundle_path
    ).acquire_token_for_client(scopes=[SCOPE])
    assert (result.get("expires_in"), result.get("ext_expires_in")) == (60, 60)


# --- SMTP: session shape --------------------------------------------------------


def test_banner_and_ehlo_lists(fake_smtp: FakeExchange, ca_bundle_path: Path) -> None:
    with socket.create_connection((fake_smtp.host, fake_smtp.port), timeout=5) as raw:
        banner = raw.makefile("rb").readline().decode()
    assert re.fullmatch(
        r"220 BN9PR03CA0042\.outlook\.office365\.com Microsoft ESMTP MAIL Service ready at "
        r"\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} \+0000 \[[0-9A-F]{16}\]\r\n",
        banner,
    ), banner
    client = smtplib.SMTP(fake_smtp.hostname, fake_smtp.port, timeout=5)
    client.ehlo()
    assert client.ehlo_resp is not None
    before = client.ehlo_resp.decode().split("\n")[1:]
    assert before == [
        "SIZE 157286400",
        "PIPELINING",
        "DSN",
        "ENHANCEDSTATUSCODES",
        "STARTTLS",
        "8BITMIME",
        "BINARYMIME",
        "CHUNKING",
        "SMTPUTF8",
    ]
    reply = client.starttls(context=ssl.create_default_context(cafile=str(ca_bundle_path)))
    assert reply == (220, b"2.0.0 SMTP server ready")
    client.ehlo()
    after = client.ehlo_resp.decode().split("\n")[1:]
    assert after == [x if x != "STARTTLS" else "AUTH LOGIN XOAUTH2" for x in before]
    assert client.quit() == (221, b"2.0.0 Service closing transmission channel")
    assert fake_smtp.commands == ["EHLO", "STARTTLS", "EHLO", "QUIT"]


def test_xoauth2_initial_response_and_send(
    fake_smtp: FakeExchange, m365_tenant: M365Tenant, ca_bundle_path: Path
) -> None:
    token = get_token(m365_tenant, ca_bundle_path)
    client = smtp_session(fake_smtp, ca_bundle_path)
    code, _ = client.auth("XOAUTH2", xoauth2(m365_tenant.mailbox, token), initial_response_ok=True)
    assert code == 235
    assert client.sendmail(m365_tenant.mailbox, ["x@example.com"], MESSAGE) == {}
    client.quit()

    (message,) = fake_smtp.messages
    assert message.mail_from == m365_tenant.mailbox
    assert message.rcpt_tos == ("x@example.com",)
    assert message.authenticated_as == m365_tenant.mailbox
    assert message.subject == "hi"
    assert message.reply.startswith("250 2.0.0 OK <")
    (attempt,) = fake_smtp.auth_attempts
    assert (attempt.mechanism, attempt.success, attempt.reason) == ("XOAUTH2", True, "ok")
    assert attempt.app_id == m365_tenant.client_id
    leaked = token in repr(fake_smtp.auth_attempts) + repr(fake_smtp.messages)
    assert not leaked, "token leaked into the SMTP records"
    assert fake_smtp.server_errors == []


def test_long_xoauth2_line_is_accepted(
    fake_identity: FakeIdentity, m365_tenant: M365Tenant, smtp_client: smtplib.SMTP
) -> None:
    token = fake_identity.issue_token(m365_tenant.app, padding="x" * 4000)
    code, _ = smtp_client.auth("XOAUTH2", xoauth2(m365_tenant.mailbox, token), initial_response_ok=True)
    assert code == 235


def test_xoauth2_after_empty_challenge(
    fake_smtp: FakeExchange, m365_tenant: M365Tenant, ca_bundle_path: Path, smtp_client: smtplib.SMTP
) -> None:
    token = get_token(m365_tenant, ca_bundle_path)
    code, _ = smtp_client.auth("XOAUTH2", xoauth2(m365_tenant.mailbox, token), initial_response_ok=False)
    assert code == 235


def test_auth_without_fresh_ehlo_hides_503(
    fake_smtp: FakeExchange, m365_tenant: M365Tenant, ca_bundle_path: Path
) -> None:
    token = get_token(m365_tenant, ca_bundle_path)
    client = smtp_session(fake_smtp, ca_bundle_path, ehlo_after_tls=False)
    code, text = client.auth("XOAUTH2", xoauth2(m365_tenant.mailbox, token), initial_response_ok=True)
    assert code == 503
    assert text.decode() == "5.5.2 Send hello first [BN9PR03CA0042.NAMPRD03.PROD.OUTLOOK.COM]"
    with pytest.raises(smtplib.SMTPSenderRefused) as excinfo:
        client.sendmail(m365_tenant.mailbox, ["x@example.com"], MESSAGE)
    assert excinfo.value.smtp_code == 530
    assert excinfo.value.smtp_error.startswith(b"5.7.57 Client not authenticated to send mail.")


def test_mail_without_auth_is_530(smtp_client: smtplib.SMTP) -> None:
    with pytest.raises(smtplib.SMTPSenderRefused) as excinfo:
        smtp_client.sendmail("svc@contoso.com", ["x@example.com"], MESSAGE)
    assert excinfo.value.smtp_code == 530


# --- SMTP: authorisation faults ------------------------------------------------


def _auth_error(client: smtplib.SMTP, mailbox: str, token: str) -> smtplib.SMTPAuthenticationError:
    with pytest.raises(smtplib.SMTPAuthenticationError) as excinfo:
        client.auth("XOAUTH2", xoauth2(mailbox, token), initial_response_ok=True)
    return excinfo.value


def test_service_principal_missing_is_535_573(
    fake_smtp: FakeExchange, m365_tenant: M365Tenant, ca_bundle_path: Path, smtp_client: smtplib.SMTP
) -> None:
    fake_smtp.remove_service_principal(m365_tenant.client_id)
    error = _auth_error(smtp_client, m365_tenant.mailbox, get_token(m365_tenant, ca_bundle_path))
    assert error.smtp_code == 535
    assert error.smtp_error.startswith(b"5.7.3 Authentication unsuccessful [BN9PR03CA0042.namprd03.prod.outlook.com ")
    assert fake_smtp.auth_attempts[-1].reason == "service_principal_not_registered"


def test_service_principal_with_app_registration_object_id(
    fake_smtp: FakeExchange, m365_tenant: M365Tenant, ca_bundle_path: Path, smtp_client: smtplib.SMTP
) -> None:
    fake_smtp.register_service_principal(m365_tenant.client_id, m365_tenant.app.app_object_id)
    error = _auth_error(smtp_client, m365_tenant.mailbox, get_token(m365_tenant, ca_bundle_path))
    assert error.smtp_code == 535
    assert fake_smtp.auth_attempts[-1].reason == "service_principal_object_id_mismatch"


@pytest.mark.parametrize(("mailbox", "scope"), [("svc@contoso.com", "Mailbox"), (None, "Tenant")])
def test_smtp_auth_disabled_is_535_57139(
    fake_smtp: FakeExchange,
    m365_tenant: M365Tenant,
    ca_bundle_path: Path,
    smtp_client: smtplib.SMTP,
    mailbox: str | None,
    scope: str,
) -> None:
    fake_smtp.disable_smtp_auth(mailbox)
    error = _auth_error(smtp_client, m365_tenant.mailbox, get_token(m365_tenant, ca_bundle_path))
    assert error.smtp_code == 535
    assert error.smtp_error.decode().startswith(
        f"5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the {scope}. "
        "Visit https://aka.ms/smtp_auth_disabled for more information. ["
    )


def test_token_faults_are_535(
    fake_identity: FakeIdentity, fake_smtp: FakeExchange, m365_tenant: M365Tenant, ca_bundle_path: Path
) -> None:
    fake_identity.allow_resource("https://graph.microsoft.com")
    cases = {
        "expired": fake_identity.issue_token(m365_tenant.app, lifetime=-5),
        "wrong_audience": get_token(m365_tenant, ca_bundle_path, "https://graph.microsoft.com/.default"),
        "missing_role": fake_identity.issue_token(m365_tenant.app, roles=[]),
        "no_mailbox_permission": get_token(m365_tenant, ca_bundle_path),
    }
    for reason, token in cases.items():
        mailbox = "other@contoso.com" if reason == "no_mailbox_permission" else m365_tenant.mailbox
        client = smtp_session(fake_smtp, ca_bundle_path)
        error = _auth_error(client, mailbox, token)
        client.close()
        assert (reason, error.smtp_code) == (reason, 535)
        assert fake_smtp.auth_attempts[-1].reason == reason


def test_malformed_xoauth2_is_501(smtp_client: smtplib.SMTP) -> None:
    with pytest.raises(smtplib.SMTPAuthenticationError) as excinfo:
        smtp_client.auth("XOAUTH2", lambda challenge=None: "user=not-an-address\x01auth=Bearer x\x01\x01")
    assert excinfo.value.smtp_code == 501
    assert excinfo.value.smtp_error.startswith(
        b"5.5.124 Invalid XOAUTH2 auth data - User address provided is not valid"
    )


def test_send_as_denied_after_data(
    fake_smtp: FakeExchange, m365_tenant: M365Tenant, ca_bundle_path: Path, smtp_client: smtplib.SMTP
) -> None:
    token = get_token(m365_tenant, ca_bundle_path)
    smtp_client.auth("XOAUTH2", xoauth2(m365_tenant.mailbox, token), initial_response_ok=True)
    other = MESSAGE.replace("From: svc@contoso.com", "From: boss@contoso.com")
    with pytest.raises(smtplib.SMTPDataError) as excinfo:
        smtp_client.sendmail(m365_tenant.mailbox, ["x@example.com"], other)
    assert excinfo.value.smtp_code == 554
    assert excinfo.value.smtp_error.decode().startswith(
        "5.2.252 SendAsDenied; svc@contoso.com not allowed to send as boss@contoso.com; "
        "STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; "
        "Failed to process message due to a permanent exception with message "
        "[BeginDiagnosticData]Cannot submit message."
    )
    assert fake_smtp.commands[-5:] == ["MAIL", "RCPT", "DATA", "MESSAGE", "RSET"]
    assert fake_smtp.messages == []
    assert len(fake_smtp.rejected_messages) == 1

    fake_smtp.grant_send_as(m365_tenant.mailbox, "boss@contoso.com")
    assert smtp_client.sendmail(m365_tenant.mailbox, ["x@example.com"], other) == {}
    assert len(fake_smtp.messages) == 1


# --- SMTP: transport faults ------------------------------------------------------


def test_silent_server_times_out(silent_server: SilentServer) -> None:
    started = time.monotonic()
    with pytest.raises(smtplib.SMTPServerDisconnected, match="timed out") as excinfo:
        smtplib.SMTP(silent_server.host, silent_server.port, timeout=0.5)
    assert isinstance(excinfo.value.__context__, TimeoutError)
    assert time.monotonic() - started < 3
    assert silent_server.connections == 1


def test_drop_after_ehlo(fake_smtp: FakeExchange) -> None:
    fake_smtp.drop_after("EHLO")
    client = smtplib.SMTP(fake_smtp.hostname, fake_smtp.port, timeout=5)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.ehlo()
    assert fake_smtp.commands == ["EHLO"]


def test_no_starttls(fake_smtp: FakeExchange, ca_bundle_path: Path) -> None:
    fake_smtp.no_starttls()
    client = smtplib.SMTP(fake_smtp.hostname, fake_smtp.port, timeout=5)
    with pytest.raises(smtplib.SMTPNotSupportedError):
        client.starttls(context=ssl.create_default_context(cafile=str(ca_bundle_path)))
    client.close()


def test_no_xoauth2(fake_smtp: FakeExchange, m365_tenant: M365Tenant, ca_bundle_path: Path) -> None:
    fake_smtp.no_xoauth2()
    client = smtp_session(fake_smtp, ca_bundle_path)
    assert client.esmtp_features["auth"].split() == ["LOGIN"]
    error = _auth_error(client, m365_tenant.mailbox, "x.y.z")
    assert (error.smtp_code, error.smtp_error[:27]) == (504, b"5.7.4 Unrecognized authenti")
    client.close()


def test_reply_overrides(fake_smtp: FakeExchange, m365_tenant: M365Tenant, ca_bundle_path: Path) -> None:
    text = "535 5.7.139 Authentication unsuccessful, the request did not meet the criteria"
    fake_smtp.reply_to_auth(text, times=1)
    client = smtp_session(fake_smtp, ca_bundle_path)
    token = get_token(m365_tenant, ca_bundle_path)
    error = _auth_error(client, m365_tenant.mailbox, token)
    assert error.smtp_error == text[4:].encode()
    assert fake_smtp.auth_attempts[-1].reason == "override"
    assert client.auth("XOAUTH2", xoauth2(m365_tenant.mailbox, token))[0] == 235
    fake_smtp.reply_to("MAIL", "421 4.4.1 Connection timed out. Total session duration: 00:05:00.7054661")
    with pytest.raises(smtplib.SMTPSenderRefused) as excinfo:
        client.sendmail(m365_tenant.mailbox, ["x@example.com"], MESSAGE)
    assert excinfo.value.smtp_code == 421


@pytest.mark.parametrize(("cert", "match"), [(tls.wrong_host_cert, "match"), (tls.untrusted_server_cert, "certif")])
def test_starttls_certificate_faults(
    fake_identity: FakeIdentity, ca_bundle_path: Path, cert: Callable[[], Any], match: str
) -> None:
    with FakeExchange(fake_identity, server_cert=cert()) as fake:
        client = smtplib.SMTP(fake.hostname, fake.port, timeout=5)
        with pytest.raises(ssl.SSLCertVerificationError, match=match):
            client.starttls(context=ssl.create_default_context(cafile=str(ca_bundle_path)))
        client.close()
        assert fake.server_errors == []


def test_implicit_tls(fake_identity: FakeIdentity, m365_tenant: M365Tenant, ca_bundle_path: Path) -> None:
    token = get_token(m365_tenant, ca_bundle_path)
    with FakeExchange(fake_identity, implicit_tls=True) as fake:
        fake.setup_mailbox(m365_tenant.app, m365_tenant.mailbox)
        context = ssl.create_default_context(cafile=str(ca_bundle_path))
        client = smtplib.SMTP_SSL(fake.hostname, fake.port, timeout=5, context=context)
        client.ehlo()
        assert "starttls" not in client.esmtp_features
        assert client.auth("XOAUTH2", xoauth2(m365_tenant.mailbox, token))[0] == 235
        client.quit()


def test_login_users(fake_smtp: FakeExchange, smtp_client: smtplib.SMTP) -> None:
    fake_smtp.add_user("relay@contoso.com", "pw-1")
    with pytest.raises(smtplib.SMTPAuthenticationError) as excinfo:
        smtp_client.login("relay@contoso.com", "wrong")
    assert excinfo.value.smtp_code == 535
    assert smtp_client.login("relay@contoso.com", "pw-1")[0] == 235
    assert [a.reason for a in fake_smtp.auth_attempts] == ["bad_credentials", "ok"]


def test_reset_keeps_setup_unless_everything(fake_smtp: FakeExchange, m365_tenant: M365Tenant) -> None:
    fake_smtp.drop_after("EHLO")
    fake_smtp.reset()
    assert fake_smtp.commands == []
    token = fake_smtp.identity.issue_token(m365_tenant.app) if fake_smtp.identity else ""
    assert fake_smtp._check_xoauth2(m365_tenant.mailbox, token).success
    fake_smtp.reset(everything=True)
    assert not fake_smtp._check_xoauth2(m365_tenant.mailbox, token).success


def test_parse_xoauth2() -> None:
    assert parse_xoauth2(b"user=a@b.com\x01auth=Bearer t.o.k\x01\x01") == ("a@b.com", "t.o.k")
    assert parse_xoauth2(b"user=a@b.com\x01auth=Bearer t\x01") is None
    assert parse_xoauth2(b"dXNlcj1hQGIuY29t") is None


def test_fake_env(fake_env: dict[str, str], ca_bundle_path: Path, fake_identity: FakeIdentity) -> None:
    assert os.environ["MAILADMIN_CA_BUNDLE"] == str(ca_bundle_path)
    assert os.environ["MAILADMIN_AUTHORITY_HOST"] == fake_identity.authority_host
    assert Path(ca_bundle_path).read_text().startswith("-----BEGIN CERTIFICATE-----")


# --- Loopback network: TCP_NODELAY, one write per reply, simulated round trip ---------


def handshake(fake: FakeExchange, t: M365Tenant, ca: Path) -> None:
    """EHLO, STARTTLS, EHLO, AUTH XOAUTH2, QUIT: the conversation the product has."""
    token = get_token(t, ca)
    client = smtp_session(fake, ca)
    assert client.auth("XOAUTH2", xoauth2(t.mailbox, token), initial_response_ok=True)[0] == 235
    client.quit()


def test_every_accepted_socket_has_tcp_nodelay(
    fake_identity: FakeIdentity, fake_smtp: FakeExchange, m365_tenant: M365Tenant, ca_bundle_path: Path
) -> None:
    handshake(fake_smtp, m365_tenant, ca_bundle_path)
    handshake(fake_smtp, m365_tenant, ca_bundle_path)
    assert fake_smtp.nodelay_by_connection == [True, True]
    assert fake_identity.nodelay_by_connection and all(fake_identity.nodelay_by_connection)
    fake_smtp.reset()
    assert fake_smtp.nodelay_by_connection == []


def test_implicit_tls_and_silent_sockets_have_tcp_nodelay(
    fake_identity: FakeIdentity, silent_server: SilentServer, ca_bundle_path: Path
) -> None:
    with FakeExchange(fake_identity, implicit_tls=True) as fake:
        context = ssl.create_default_context(cafile=str(ca_bundle_path))
        smtplib.SMTP_SSL(fake.hostname, fake.port, timeout=5, context=context).quit()
        # aiosmtpd's controller also connects once itself to check an implicit-TLS server is up.
        assert fake.nodelay_by_connection == [True] * fake.connections
    with socket.create_connection((silent_server.host, silent_server.port), timeout=5):
        deadline = time.monotonic() + 5
        while not silent_server.nodelay_by_connection and time.monotonic() < deadline:
            time.sleep(0.01)
    assert silent_server.nodelay_by_connection == [True]


def test_multiline_smtp_reply_leaves_in_one_write(fake_smtp: FakeExchange) -> None:
    with socket.create_connection((fake_smtp.host, fake_smtp.port), timeout=5) as raw:
        assert raw.recv(4096).startswith(b"220 ")
        raw.sendall(b"EHLO client.example\r\n")
        # One send() of a few hundred bytes arrives in one segment on loopback.
        reply = raw.recv(4096)
    assert reply.startswith(b"250-") and reply.endswith(b"250 SMTPUTF8\r\n"), reply


def test_https_response_leaves_in_one_write(fake_identity: FakeIdentity, ca_bundle_path: Path) -> None:
    context = ssl.create_default_context(cafile=str(ca_bundle_path))
    request = b"GET /common/discovery/instance HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    tcp = socket.create_connection((fake_identity.host, fake_identity.port), timeout=5)
    with context.wrap_socket(tcp, server_hostname="127.0.0.1") as raw:
        raw.sendall(request)
        # One TLS record holds status line, headers and body (under 16 KiB).
        response = raw.recv(65536)
    head, _, body = response.partition(b"\r\n\r\n")
    length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
    assert head.startswith(b"HTTP/1.1 400") and len(body) == length, response


def test_simulated_round_trip_delays_every_smtp_reply(
    fake_smtp: FakeExchange, m365_tenant: M365Tenant, ca_bundle_path: Path
) -> None:
    token = get_token(m365_tenant, ca_bundle_path)
    fake_smtp.simulate_round_trip(0.05)
    started = time.monotonic()
    client = smtp_session(fake_smtp, ca_bundle_path)
    assert client.auth("XOAUTH2", xoauth2(m365_tenant.mailbox, token), initial_response_ok=True)[0] == 235
    client.quit()
    # Banner, EHLO (nine lines, one reply), STARTTLS, EHLO, AUTH, QUIT.
    assert fake_smtp.delayed_replies == 6
    assert time.monotonic() - started >= 6 * 0.05
    fake_smtp.reset()
    assert (fake_smtp.round_trip, fake_smtp.delayed_replies) == (0.0, 0)


def test_simulated_round_trip_delays_every_https_response(
    fake_identity: FakeIdentity, m365_tenant: M365Tenant, ca_bundle_path: Path
) -> None:
    fake_identity.simulate_round_trip(0.05)
    started = time.monotonic()
    get_token(m365_tenant, ca_bundle_path)
    assert [r.kind for r in fake_identity.requests] == ["discovery", "token"]
    assert fake_identity.delayed_replies == 2
    assert time.monotonic() - started >= 2 * 0.05
    fake_identity.reset()
    assert (fake_identity.round_trip, fake_identity.delayed_replies) == (0.0, 0)


def test_a_request_still_stalled_from_before_a_reset_is_not_counted_after_it(
    fake_identity: FakeIdentity, m365_tenant: M365Tenant, ca_bundle_path: Path
) -> None:
    """An earlier test's stalled request (its client gave up) ends during a later test."""
    fake_identity.stall(0.5, on="token", times=1)
    with pytest.raises(requests.exceptions.Timeout):
        requests.post(f"{m365_tenant.authority}/oauth2/v2.0/token", data={}, verify=str(ca_bundle_path), timeout=0.1)
    fake_identity.reset()
    fake_identity.simulate_round_trip(0.01)
    time.sleep(0.8)  # the stall ends and the fake answers the gone client
    assert fake_identity.delayed_replies == 0


def test_round_trip_default_comes_from_the_constructor(fake_identity: FakeIdentity) -> None:
    with FakeExchange(fake_identity, round_trip=0.01) as fake:
        fake.simulate_round_trip(0)
        fake.reset()
        assert fake.round_trip == 0.01
        smtplib.SMTP(fake.hostname, fake.port, timeout=5).quit()
        assert fake.delayed_replies == 2
    with pytest.raises(ValueError):
        FakeIdentity(round_trip=-1)
    with pytest.raises(ValueError):
        fake_identity.simulate_round_trip(-0.1)


def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    give_up = time.monotonic() + seconds
    while not condition():
        if time.monotonic() >= give_up:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.parametrize("tls_first", [False, True], ids=["plain", "after-starttls"])
def test_a_client_that_closes_right_after_quit_leaves_no_error(
    fake_smtp: FakeExchange, ca_bundle_path: Path, tls_first: bool
) -> None:
    """As the product does: QUIT, then close without reading the 221 (the fake must not trip on it)."""
    for _ in range(20):
        if tls_first:
            client = smtp_session(fake_smtp, ca_bundle_path)
        else:
            client = smtplib.SMTP(fake_smtp.hostname, fake_smtp.port, timeout=5)
            client.ehlo()
        client.putcmd("quit")
        client.close()
    assert wait_for(lambda: fake_smtp.commands.count("QUIT") == 20), fake_smtp.commands
    assert fake_smtp.server_errors == []


def test_delay_reply_to_slows_only_that_verb(fake_smtp: FakeExchange) -> None:
    fake_smtp.delay_reply_to("QUIT", 0.3)
    client = smtplib.SMTP(fake_smtp.hostname, fake_smtp.port, timeout=5)
    started = time.monotonic()
    assert client.ehlo()[0] == 250
    assert time.monotonic() - started < 0.3
    started = time.monotonic()
    assert client.quit()[0] == 221
    assert time.monotonic() - started >= 0.3
    fake_smtp.reset()
    assert fake_smtp._extra_delay("QUIT") == 0.0
