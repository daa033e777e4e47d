"""The fake Entra ID judges client assertions as Entra ID does: real msal, and hand-made JWTs posted raw."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jwt
import msal
import pytest
import requests

from tests.fakes import pki
from tests.fakes.client_assertions import used_thumbprint
from tests.fakes.fixtures import AUDIENCE, SUBJECT, M365Tenant, OidcIssuer
from tests.fakes.identity import EXCHANGE_RESOURCE, FakeIdentity

SCOPE = f"{EXCHANGE_RESOURCE}/.default"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture(autouse=True)
def _requests_honours_verify(no_requests_ca_env: None) -> None:
    """msal's ``verify=`` only works when REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE are unset."""


def token(t: M365Tenant, ca: Path, credential: Any) -> dict[str, Any]:
    app = msal.ConfidentialClientApplication(
        t.client_id, client_credential=credential, authority=t.authority, instance_discovery=False, verify=str(ca)
    )
    result = app.acquire_token_for_client(scopes=[SCOPE])
    result.pop("access_token", None)
    return result


def certificate_credential(issued: pki.Issued, *, sha256: bool = False) -> dict[str, str]:
    if sha256:  # msal then signs PS256 with x5t#S256
        return {"private_key": issued.private_key, "public_certificate": issued.certificate}
    thumbprint = used_thumbprint({"x5t": pki_x5t(issued)})
    return {"private_key": issued.private_key, "thumbprint": thumbprint, "public_certificate": issued.certificate}


def pki_x5t(issued: pki.Issued) -> str:
    import base64

    from cryptography.hazmat.primitives import hashes

    return base64.urlsafe_b64encode(issued.cert.fingerprint(hashes.SHA1())).decode()


def post_raw(t: M365Tenant, ca: Path, assertion: str) -> dict[str, Any]:
    reply = requests.post(
        f"{t.authority}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": t.client_id,
            "scope": SCOPE,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        },
        verify=str(ca),
        timeout=5,
    )
    return reply.json()


def signed(issued: pki.Issued, t: M365Tenant, **claims: Any) -> str:
    now = int(time.time())
    payload = {
        "aud": f"{t.authority}/oauth2/v2.0/token",
        "iss": t.client_id,
        "sub": t.client_id,
        "exp": now + 600,
        "nbf": now,
        "jti": "x",
        **claims,
    }
    return jwt.encode(payload, issued.key, algorithm="RS256", headers={"x5t": pki_x5t(issued).rstrip("=")})


@pytest.mark.parametrize("sha256", [False, True], ids=["x5t RS256", "x5t#S256 PS256"])
def test_a_registered_certificate_gets_a_token(
    sha256, fake_identity: FakeIdentity, m365_tenant: M365Tenant, ca_bundle_path: Path
):
    issued = pki.issue()
    fake_identity.upload_certificate(m365_tenant.app, issued.certificate)
    result = token(m365_tenant, ca_bundle_path, certificate_credential(issued, sha256=sha256))
    assert result.get("token_type") == "Bearer", result
    request = fake_identity.token_requests[-1]
    assert request.form["client_assertion"] == "<redacted>" and not request.had_secret
    assert ("x5t#S256" if sha256 else "x5t") in request.assertion["header"]


def test_an_unregistered_certificate_gets_700027_naming_its_thumbprint(m365_tenant: M365Tenant, ca_bundle_path: Path):
    issued = pki.issue()
    result = token(m365_tenant, ca_bundle_path, certificate_credential(issued))
    assert result["error_codes"] == [700027]
    assert used_thumbprint({"x5t": pki_x5t(issued)}) in result["error_description"]
    assert "The key was not found." in result["error_description"]


def test_assertion_checks_answer_with_entras_codes(
    fake_identity: FakeIdentity, m365_tenant: M365Tenant, ca_bundle_path: Path
):
    issued, other = pki.issue(), pki.issue()
    fake_identity.upload_certificate(m365_tenant.app, issued.certificate)
    now = int(time.time())
    assert post_raw(m365_tenant, ca_bundle_path, signed(issued, m365_tenant))["token_type"] == "Bearer"
    cases = {
        700021: signed(issued, m365_tenant, iss="another-client", sub="another-client"),
        700024: signed(issued, m365_tenant, exp=now - 3600, nbf=now - 7200),
        700027: signed(issued, m365_tenant, aud="https://elsewhere/token"),
    }
    for code, assertion in cases.items():
        assert post_raw(m365_tenant, ca_bundle_path, assertion)["error_codes"] == [code], code
    forged = jwt.encode(
        {"iss": m365_tenant.client_id, "sub": m365_tenant.client_id, "exp": now + 60},
        other.key,
        algorithm="RS256",
        headers={"x5t": pki_x5t(issued)},
    )
    reply = post_raw(m365_tenant, ca_bundle_path, forged)
    assert reply["error_codes"] == [700027] and "signature validation" in reply["error_description"]


def test_an_expired_registered_certificate_gets_700027_key_expired(
    fake_identity: FakeIdentity, m365_tenant: M365Tenant, ca_bundle_path: Path
):
    expired = pki.issue(valid_from_days=-30, valid_for_days=10)
    fake_identity.upload_certificate(m365_tenant.app, expired.certificate)
    reply = post_raw(m365_tenant, ca_bundle_path, signed(expired, m365_tenant))
    assert reply["error_codes"] == [700027] and "The key used is expired." in reply["error_description"]


def test_federated_assertions_are_matched_by_issuer_audience_and_subject(
    fake_identity: FakeIdentity, m365_tenant: M365Tenant, ca_bundle_path: Path, tmp_path: Path
):
    issuer = OidcIssuer(fake_identity, tmp_path / "token")
    fake_identity.add_federated_credential(m365_tenant.app, issuer.issuer, SUBJECT, AUDIENCE)
    assert token(m365_tenant, ca_bundle_path, {"client_assertion": issuer.assertion()}).get("token_type") == "Bearer"
    cases = {
        700211: issuer.assertion(issuer="https://other-issuer/"),
        700212: issuer.assertion(audience="api://other"),
        700213: issuer.assertion(subject="system:serviceaccount:x:y"),
        700024: issuer.assertion(lifetime=-3600, not_before=0),
        5002738: issuer.assertion(algorithm="HS256"),
    }
    for code, assertion in cases.items():
        result = token(m365_tenant, ca_bundle_path, {"client_assertion": assertion})
        assert result["error_codes"] == [code], (code, result.get("error_description"))
    m365_tenant.app.legacy_federated_errors = True
    result = token(m365_tenant, ca_bundle_path, {"client_assertion": issuer.assertion(subject="other")})
    assert result["error_codes"] == [70021]
    assert "Assertion Subject: 'other'" in result["error_description"]
