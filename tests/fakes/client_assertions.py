"""How the fake Entra ID judges a posted client assertion (notes section 9).

Two kinds: a certificate assertion (``iss`` = ``sub`` = the client ID, signed with a certificate
the app registration lists, found by ``x5t`` or ``x5t#S256``, ``aud`` the token endpoint), and a
federated assertion (another issuer's JWT, matched against the app's federated credentials by
issuer, audience and subject, signed with a key that issuer published). ``judge`` returns None
when the assertion is accepted, else the AADSTS code and the values of its message.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization

CERTIFICATE_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
FEDERATED_ALGORITHMS = ("RS256", "RS384", "RS512")
CLOCK_SKEW = 300


@dataclass(frozen=True)
class Rejection:
    code: int
    values: dict[str, str]


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unverified_parts(assertion: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The header and claims of a JWT, or None if it is not one."""
    try:
        header_part, claims_part, _ = assertion.split(".")
        header = json.loads(_b64url_decode(header_part))
        claims = json.loads(_b64url_decode(claims_part))
    except ValueError:
        return None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return None
    return header, claims


def _stamp(value: Any) -> str:
    if not isinstance(value, int | float):
        return "(none)"
    return datetime.fromtimestamp(value, UTC).strftime("%m/%d/%Y %H:%M:%S")


def _time_rejection(claims: dict[str, Any]) -> Rejection | None:
    now = time.time()
    exp, nbf = claims.get("exp"), claims.get("nbf")
    outside = not isinstance(exp, int | float) or now >= exp + CLOCK_SKEW
    outside = outside or (isinstance(nbf, int | float) and now + CLOCK_SKEW < nbf)
    if outside:
        return Rejection(700024, {"now": _stamp(now), "nbf": _stamp(nbf), "exp": _stamp(exp)})
    return None


def _certificate_of(pems: list[str], header: dict[str, Any]) -> x509.Certificate | None:
    for pem in pems:
        certificate = x509.load_pem_x509_certificate(pem.encode())
        der = certificate.public_bytes(serialization.Encoding.DER)
        # msal keeps the base64 padding; RFC 7515 drops it: Entra ID accepts both.
        if str(header.get("x5t", "")).rstrip("=") == _b64url(hashlib.sha1(der).digest()):
            return certificate
        if str(header.get("x5t#S256", "")).rstrip("=") == _b64url(hashlib.sha256(der).digest()):
            return certificate
    return None


def used_thumbprint(header: dict[str, Any]) -> str:
    """The SHA-1 thumbprint (hex, upper case) the header names, as Entra ID quotes it."""
    for name in ("x5t", "x5t#S256"):
        if isinstance(header.get(name), str):
            try:
                return _b64url_decode(header[name]).hex().upper()
            except ValueError:
                return header[name]
    return ""


def judge_certificate(
    app_id: str, pems: list[str], assertion: str, header: dict, claims: dict, endpoint: str
) -> Rejection | None:
    if claims.get("iss") != app_id or claims.get("sub") != app_id:
        return Rejection(700021, {})
    thumbprint = used_thumbprint(header)
    certificate = _certificate_of(pems, header)
    if certificate is None:
        return Rejection(700027, {"reason": "The key was not found.", "thumbprint": thumbprint, "app_id": app_id})
    if header.get("alg") not in CERTIFICATE_ALGORITHMS:
        return Rejection(5002738, {"alg": str(header.get("alg"))})
    try:
        jwt.decode(
            assertion,
            certificate.public_key(),
            algorithms=[header["alg"]],
            options={"verify_exp": False, "verify_nbf": False, "verify_aud": False, "verify_iat": False},
        )
    except jwt.InvalidTokenError:
        return Rejection(
            700027,
            {"reason": "Client assertion failed signature validation.", "thumbprint": thumbprint, "app_id": app_id},
        )
    if certificate.not_valid_after_utc <= datetime.now(UTC):
        return Rejection(700027, {"reason": "The key used is expired.", "thumbprint": thumbprint, "app_id": app_id})
    if claims.get("aud") != endpoint:
        return Rejection(
            700027,
            {
                "reason": "The audience of the assertion is not this token endpoint.",
                "thumbprint": thumbprint,
                "app_id": app_id,
            },
        )
    return _time_rejection(claims)


def judge_federated(
    credentials: list, issuer_keys: dict[str, list], assertion: str, header: dict, claims: dict, *, legacy: bool
) -> Rejection | None:
    issuer, subject = str(claims.get("iss", "")), str(claims.get("sub", ""))
    audience_claim = claims.get("aud")
    audiences = audience_claim if isinstance(audience_claim, list) else [audience_claim]
    values = {"issuer": issuer, "subject": subject, "audience": ", ".join(str(a) for a in audiences)}
    if header.get("alg") not in FEDERATED_ALGORITHMS:
        return Rejection(5002738, {"alg": str(header.get("alg"))})
    candidates = [c for c in credentials if c.issuer == issuer]
    if not candidates:
        return Rejection(70021 if legacy else 700211, values)
    candidates = [c for c in candidates if c.audience in audiences]
    if not candidates:
        return Rejection(70021 if legacy else 700212, values)
    candidates = [c for c in candidates if c.subject == subject]
    if not candidates:
        return Rejection(70021 if legacy else 700213, values)
    for key in issuer_keys.get(issuer, []):
        try:
            jwt.decode(
                assertion,
                key,
                algorithms=list(FEDERATED_ALGORITHMS),
                options={"verify_exp": False, "verify_nbf": False, "verify_aud": False, "verify_iat": False},
            )
            break
        except jwt.InvalidTokenError:
            continue
    else:
        return Rejection(
            700027, {"reason": "Client assertion failed signature validation.", "thumbprint": "", "app_id": ""}
        )
    return _time_rejection(claims)
