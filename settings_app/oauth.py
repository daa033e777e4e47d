"""Access tokens from Microsoft Entra ID with the OAuth 2.0 client-credentials flow.

The only module that imports msal; its HTTP goes through settings_app.http. Plain values in
and out; every failure is a TokenError with a stable code (``AADSTS7000215``, ``timeout``,
``tls-untrusted``...). ``SharedTokenCache`` is msal's serializable cache as JSON text, for
settings_app.token_cache to keep between processes.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import ssl
import time
from dataclasses import dataclass, field

import msal
from django.views.decorators.debug import sensitive_variables
from msal.authority import WELL_KNOWN_AUTHORITY_HOSTS
from msal.exceptions import MsalServiceError

from settings_app import assertions, http
from settings_app.deadline import Deadline, DeadlineExceeded
from settings_app.values import CertificateCredential, ClientSecret, Credential, FederatedAssertion, ProtocolError


class TokenError(ProtocolError):
    """The identity service gave no token. ``reply`` is its answer, free of secrets."""

    def __init__(self, code: str, message: str, reply: str = "") -> None:
        super().__init__(code, message, reply, step="token", retryable=code in ("timeout", "unreachable"))


@dataclass(frozen=True)
class AccessToken:
    value: str = field(repr=False)
    expires_in: int
    source: str


class SharedTokenCache:
    """msal's token cache, read from and written to JSON text; never pickled.

    Text that is not a cache msal wrote (garbage, truncated, foreign) reads as an empty cache.
    """

    def __init__(self, serialized: str = "") -> None:
        self._cache = msal.SerializableTokenCache()
        if serialized and _is_msal_cache(serialized):
            self._cache.deserialize(serialized)

    def valid_token(self, *, client_id: str, scope: str, margin: int) -> AccessToken | None:
        """The cached token for ``scope`` with more than ``margin`` seconds left, found without
        building an msal app (which would cost a discovery request on every call)."""
        now = time.time()
        try:
            entries = list(
                self._cache.search(
                    msal.TokenCache.CredentialType.ACCESS_TOKEN, target=[scope], query={"client_id": client_id}
                )
            )
        except (ValueError, TypeError, AttributeError, KeyError):
            return None
        for entry in entries:
            try:
                left = int(entry.get("expires_on", 0)) - now
                due = "refresh_on" in entry and int(entry["refresh_on"]) < now
                secret = entry["secret"]
            except (ValueError, TypeError, KeyError):
                continue
            if left >= margin and not due and isinstance(secret, str):
                return AccessToken(secret, int(left), "cache")
        return None

    @property
    def changed(self) -> bool:
        return self._cache.has_state_changed

    def serialize(self) -> str:
        return self._cache.serialize()


class _DiscoveryAnswers(dict):
    """msal's ``http_cache``, shared by the process, that keeps GET answers only.

    The discovery documents (the tenant's OpenID configuration, instance metadata) are then
    fetched once per process and day instead of before every token request. msal also caches
    token answers there (throttling 429s and repeated 400s); those are dropped, so a fix made
    in Entra ID shows at the very next token request.
    """

    _TOKEN_ANSWER = "POST "

    def __setitem__(self, key, value) -> None:
        if not (isinstance(key, str) and key.startswith(self._TOKEN_ANSWER)):
            super().__setitem__(key, value)


_DISCOVERY_ANSWERS = _DiscoveryAnswers()


# msal keeps these as decimal strings; anything else would fail inside msal, not here.
_TIMESTAMPS = ("cached_at", "expires_on", "extended_expires_on", "refresh_on")


def _is_msal_cache(serialized: str) -> bool:
    """Whether ``serialized`` has the shape msal writes: sections of entries, access tokens with a
    string secret and decimal timestamps. msal itself trusts what it reads and fails later."""
    try:
        data = json.loads(serialized)
    except ValueError:
        return False
    if not isinstance(data, dict):
        return False
    for section in data.values():
        if not isinstance(section, dict) or not all(isinstance(entry, dict) for entry in section.values()):
            return False
    for entry in data.get("AccessToken", {}).values():
        if not isinstance(entry.get("secret"), str):
            return False
        stamps = [entry.get(name) for name in _TIMESTAMPS if name in entry]
        if "expires_on" not in entry or not all(isinstance(s, str) and s.isascii() and s.isdigit() for s in stamps):
            return False
    return True


@sensitive_variables()
def _msal_credential(credential: Credential) -> str | dict:
    """msal's ``client_credential``: a secret, a certificate (msal signs the assertion, RS256 with the
    SHA-1 ``x5t``; ``public_certificate`` adds ``x5c`` for subject name/issuer auth), or a callable
    reading the federated assertion file afresh on every token request (the platform rotates it)."""
    if isinstance(credential, ClientSecret):
        return credential.value
    if isinstance(credential, CertificateCredential):
        return {
            "private_key": credential.private_key,
            "thumbprint": credential.thumbprint,
            "public_certificate": credential.certificate,
        }
    if isinstance(credential, FederatedAssertion):
        token_file = credential.token_file
        return {"client_assertion": lambda: assertions.read_assertion(token_file)}
    raise TypeError(f"no msal form for {type(credential).__name__}")


@sensitive_variables()
def acquire_token(
    *,
    client_id: str,
    tenant_id: str,
    credential: Credential,
    authority_host: str,
    scope: str,
    deadline: Deadline,
    ssl_context: ssl.SSLContext,
    ca_bundle: str = "",
    token_cache: SharedTokenCache | None = None,
) -> AccessToken:
    """A token for ``scope``; raises TokenError.

    ``ssl_context`` comes from tls.trust_context(ca_bundle); ``ca_bundle`` is
    MAILADMIN_CA_BUNDLE or empty. Without ``token_cache`` a fresh cache is used, so the identity
    service is always asked: that proves the credential works. A shared cache is updated in place.
    """
    authority = f"{authority_host.rstrip('/')}/{tenant_id}"
    host = authority_host.split("://", 1)[-1].split("/", 1)[0].lower()
    session = http.DeadlineSession(deadline, ssl_context, ca_bundle)
    try:
        outcome = _request_token(
            session,
            client_id,
            _msal_credential(credential),
            authority,
            host,
            tenant_id,
            scope,
            token_cache._cache if token_cache is not None else msal.TokenCache(),
        )
    finally:
        session.close()
    # Raised here, outside any except block, so the error has no __context__: the
    # requests exception underneath holds the request, and its body the client secret.
    if isinstance(outcome, TokenError):
        raise outcome
    if "access_token" not in outcome:
        raise _token_error(outcome)
    return AccessToken(outcome["access_token"], int(outcome.get("expires_in", 0)), outcome.get("token_source", ""))


@sensitive_variables()
def _request_token(
    session: http.DeadlineSession,
    client_id: str,
    client_credential: str | dict,
    authority: str,
    host: str,
    tenant_id: str,
    scope: str,
    token_cache: msal.TokenCache,
) -> dict | TokenError:
    """msal's answer, or the TokenError describing why there is none (returned, not raised)."""
    try:
        app = msal.ConfidentialClientApplication(
            client_id,
            client_credential=client_credential,
            authority=authority,
            http_client=session,
            http_cache=_DISCOVERY_ANSWERS,
            token_cache=token_cache,
            # Hosts msal does not know (a local fake, a proxy) have no instance metadata.
            instance_discovery=host in WELL_KNOWN_AUTHORITY_HOSTS,
        )
    except ValueError as exc:
        return _discovery_error(exc, tenant_id)
    except (DeadlineExceeded, http.RequestException, MsalServiceError) as exc:
        return _failure(exc, host)
    try:
        return app.acquire_token_for_client(scopes=[scope])
    except (DeadlineExceeded, http.RequestException, MsalServiceError) as exc:
        return _failure(exc, host)
    except assertions.AssertionUnavailable as exc:
        return TokenError(exc.code, exc.message)
    except ValueError:
        return TokenError("invalid-response", "The identity service's answer was not the JSON a token endpoint sends.")


def _failure(exc: Exception, host: str) -> TokenError:
    if isinstance(exc, DeadlineExceeded):
        return TokenError("timeout", f"No answer from the identity service: {exc}.")
    if isinstance(exc, http.RequestException):
        return _transport_error(exc, host)
    status = re.search(r"\d{3}", str(exc))
    code = f"http-{status.group()}" if status else "identity-error"
    return TokenError(code, f"The identity service answered with an error ({exc}).", str(exc))


def _token_error(result: dict) -> TokenError:
    codes = result.get("error_codes") or []
    code = f"AADSTS{codes[0]}" if codes else result.get("error", "identity-error")
    description = (result.get("error_description") or "").split("\r\n")[0].split("\n")[0]
    reply = f"{result.get('error', '')}: {description}".strip(": ")
    return TokenError(code, description or result.get("error", "The identity service refused the request."), reply)


def _discovery_error(exc: ValueError, tenant_id: str) -> TokenError:
    """msal wraps a failed tenant discovery in ValueError; the Entra reply is in its context."""
    context = exc.__context__
    text = str(context) if context is not None else ""
    match = re.search(r"HTTP status: (\d+), Error: (.*)", text, re.S)
    if match:
        try:
            body = json.loads(match.group(2))
        except ValueError:
            body = {}
        if body.get("error_codes"):
            return _token_error(body)
        return TokenError(
            f"http-{match.group(1)}",
            f"The identity service refused to describe tenant '{tenant_id}'.",
            match.group(2)[:500],
        )
    if isinstance(context, ValueError):
        return TokenError(
            "invalid-response", "The identity service's tenant configuration was not valid JSON."
        )
    return TokenError("invalid-authority", str(exc).split(". ")[0] + ".")


def _transport_error(exc: http.RequestException, host: str) -> TokenError:
    failure = http.transport_failure(exc, host)
    return TokenError(failure.code, failure.message, failure.detail)


def token_claims(token: str) -> dict:
    """The claims of a JWT access token, read without verifying its signature.

    Only for display and diagnosis: never trust them for a decision about access.
    """
    try:
        payload = token.split(".")[1]
        padded = payload + "=" * (-len(payload) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except (IndexError, ValueError, binascii.Error):
        return {}
    return claims if isinstance(claims, dict) else {}
