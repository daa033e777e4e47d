"""The plain values every layer shares: connection settings, credentials, the error base, the redactor.

Nothing of the project is imported here, so that any module can use these without an import circle.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from typing import ClassVar

# C0 and C1 controls: a CR or LF would end a protocol command line early (injection).
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class ClientSecret:
    """An Entra ID application's client secret (Certificates & secrets > the secret's Value)."""

    kind: ClassVar[str] = "secret"
    value: str = field(default="", repr=False)

    def __bool__(self) -> bool:
        return bool(self.value)

    def redactions(self) -> tuple[str, ...]:
        """What must never appear in a reply, a log line or an exception."""
        return (self.value,) if self.value else ()

    def fingerprint_material(self) -> str:
        """What a cached token depends on (a digest of it is part of the cache key)."""
        return self.value


@dataclass(frozen=True)
class CertificateCredential:
    """A certificate uploaded to the app registration, with its private key (Certificates & secrets >
    Certificates). ``thumbprint`` is the SHA-1 hex the Azure portal lists; ``not_after`` is in UTC."""

    kind: ClassVar[str] = "certificate"
    private_key: str = field(default="", repr=False)
    certificate: str = ""
    thumbprint: str = ""
    not_after: datetime.datetime | None = None

    def __bool__(self) -> bool:
        return bool(self.private_key and self.certificate)

    def redactions(self) -> tuple[str, ...]:
        return (self.private_key,) if self.private_key else ()

    def fingerprint_material(self) -> str:
        # The public thumbprint names the key pair; the key itself never enters a digest.
        return self.thumbprint.lower()

    def expired(self, now: datetime.datetime) -> bool:
        return self.not_after is not None and now >= self.not_after


@dataclass(frozen=True)
class FederatedAssertion:
    """A federated credential: a JWT another identity provider writes to ``token_file`` (Azure
    Workload Identity, any OIDC platform), read afresh for every token request."""

    kind: ClassVar[str] = "federated"
    token_file: str = ""

    def __bool__(self) -> bool:
        return bool(self.token_file)

    def redactions(self) -> tuple[str, ...]:
        """The assertion in the file now (the same one the next token request sends, unless rotated)."""
        try:
            with open(self.token_file, encoding="utf-8", errors="replace") as file:
                text = file.read(65536).strip()
        except (OSError, ValueError):
            return ()
        return (text,) if text else ()

    def fingerprint_material(self) -> str:
        # The file, not its content: a rotated assertion proves the same identity.
        return self.token_file


# The kinds of credential an application can prove its identity with.
Credential = ClientSecret | CertificateCredential | FederatedAssertion


@dataclass(frozen=True)
class ConnectionSettings:
    """What one connection needs, read from the saved settings (and the backend's explicit arguments)."""

    protocol: str
    server: str
    port: int
    connection_security: str
    use_secure_auth: bool
    username: str
    sender_email: str
    use_user_email_as_sender: bool = False
    client_id: str = ""
    tenant_id: str = ""
    cloud: str = "global"
    password: str = field(default="", repr=False)
    credential: Credential = field(default_factory=ClientSecret, repr=False)

    def redactions(self) -> tuple[str, ...]:
        return tuple(value for value in (self.password, *self.credential.redactions()) if value)


class ProtocolError(Exception):
    """A step of a conversation failed.

    ``code`` is stable (``AADSTS7000215``, ``535-5.7.3``, ``timeout``...); ``message`` says what
    happened in English; ``reply`` is the server's answer; neither ever holds a secret. ``step``
    names the step when the raiser knows it; ``retryable`` is True when the same request may
    succeed on a new connection (the server hung up, or answered 421).
    """

    def __init__(self, code: str, message: str, reply: str = "", *, step: str = "", retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reply = reply
        self.step = step
        self.retryable = retryable


class Redactor:
    """Values that must never reach a reply, a detail or an exception's text."""

    MASK = "[redacted]"

    def __init__(self, *values: str) -> None:
        self._values: list[str] = []
        self.add(*values)

    def add(self, *values: str) -> None:
        self._values.extend(value for value in values if value and value not in self._values)

    def redact(self, text: str) -> str:
        for value in self._values:
            text = text.replace(value, self.MASK)
        return text
