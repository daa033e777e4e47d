"""Federated credentials: the client assertion (a JWT) another identity provider writes to a file.

Azure Workload Identity on AKS mounts it at AZURE_FEDERATED_TOKEN_FILE and rotates it, so it is
read afresh for every token request (``read_assertion``). ``decode`` reads its issuer, subject,
audience and validity without verifying it, for display and diagnosis: the assertion itself is a
bearer credential and is never shown, logged or stored. Plain Python; failures are
AssertionUnavailable, a ProtocolError of the token step with a stable code.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
from dataclasses import dataclass

from settings_app.values import ProtocolError

# What Entra ID proposes as the audience of a federated credential.
DEFAULT_AUDIENCE = "api://AzureADTokenExchange"
MAX_ASSERTION_BYTES = 65536
ACCEPTED_ALGORITHMS = ("RS256", "RS384", "RS512")


class AssertionUnavailable(ProtocolError):
    """No usable assertion: ``code`` is federated-token-not-configured, -missing, -unreadable, -empty
    or -malformed. The text names the file, never its content."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message, step="token")


@dataclass(frozen=True)
class AssertionClaims:
    """What the page shows of an assertion: who issued it, for whom, until when."""

    issuer: str
    subject: str
    audiences: tuple[str, ...]
    algorithm: str
    expires_at: datetime.datetime | None
    not_before: datetime.datetime | None

    @property
    def audience(self) -> str:
        return self.audiences[0] if self.audiences else ""

    def expired(self, now: datetime.datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at


def read_assertion(path: str) -> str:
    """The assertion in ``path`` now; raises AssertionUnavailable."""
    if not path:
        raise AssertionUnavailable(
            "federated-token-not-configured",
            "Neither AZURE_FEDERATED_TOKEN_FILE nor MAILADMIN_FEDERATED_TOKEN_FILE names a token file.",
        )
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_ASSERTION_BYTES + 1)
    except FileNotFoundError:
        raise AssertionUnavailable("federated-token-missing", f"The token file {path} does not exist.") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise AssertionUnavailable(
            "federated-token-unreadable", f"The token file {path} cannot be read ({reason})."
        ) from None
    text = data.decode("utf-8", "replace").strip()
    if not text:
        raise AssertionUnavailable("federated-token-empty", f"The token file {path} is empty.")
    if len(data) > MAX_ASSERTION_BYTES or text.count(".") != 2:
        raise AssertionUnavailable("federated-token-malformed", f"The token file {path} does not hold a JWT.")
    return text


def decode(assertion: str) -> AssertionClaims:
    """The assertion's header and claims, read without verifying its signature; raises AssertionUnavailable."""
    try:
        header_part, payload_part, _ = assertion.split(".")
        header = json.loads(_b64url_decode(header_part))
        claims = json.loads(_b64url_decode(payload_part))
    except (ValueError, binascii.Error):
        raise AssertionUnavailable("federated-token-malformed", "The token file does not hold a JWT.") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise AssertionUnavailable("federated-token-malformed", "The token file does not hold a JWT.")
    audience = claims.get("aud")
    audiences = tuple(str(item) for item in audience) if isinstance(audience, list) else (str(audience or ""),)
    return AssertionClaims(
        issuer=str(claims.get("iss") or ""),
        subject=str(claims.get("sub") or ""),
        audiences=tuple(item for item in audiences if item),
        algorithm=str(header.get("alg") or ""),
        expires_at=_timestamp(claims.get("exp")),
        not_before=_timestamp(claims.get("nbf")),
    )


def inspect(path: str) -> AssertionClaims:
    """The claims of the assertion in ``path`` now; raises AssertionUnavailable."""
    return decode(read_assertion(path))


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _timestamp(value) -> datetime.datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.datetime.fromtimestamp(value, datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return None
