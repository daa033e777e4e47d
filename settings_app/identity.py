"""The identity seam: who gives a transport its access token.

A token provider acquires a token within a deadline, says what must be redacted, names the
cache entry its tokens may share, and checks a token's claims for what the resource needs.
Microsoft Entra ID's client-credentials flow is the only identity service; ``PROVIDERS`` lists the
providers by credential kind (a client secret, a certificate, a federated assertion), explicitly.
"""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings as django_settings
from django.utils.functional import Promise
from django.utils.translation import gettext

from settings_app import oauth
from settings_app.clouds import CLOUDS, DEFAULT_CLOUD
from settings_app.deadline import Deadline
from settings_app.tls import Trust
from settings_app.values import CertificateCredential, ConnectionSettings

SHOWN_CLAIMS = ("aud", "tid", "appid", "roles", "exp")


@dataclass(frozen=True)
class Resource:
    """What a token is for: its scope, the audiences that accept it and the role it needs."""

    scope: str
    audiences: tuple[str, ...]
    role: str
    role_hint: str
    # "%(actual)s ... %(audience)s": what a token for another audience means here ("" for Exchange's).
    audience_hint: str | Promise = ""

    @property
    def audience(self) -> str:
        return self.audiences[0]


class TokenProvider(Protocol):
    cache_key: str

    def acquire(self, deadline: Deadline, token_cache: oauth.SharedTokenCache | None = None) -> oauth.AccessToken:
        """A token for the resource; raises oauth.TokenError. A given cache is read and updated."""

    def redactions(self) -> tuple[str, ...]:
        """The credential's secret parts."""

    def claim_warnings(self, claims: dict) -> list[str]:
        """What in a token's claims will make the resource refuse it."""

    def forget(self) -> None:
        """Drop any token kept for later (the next acquire asks the identity service)."""

    def cached_token(self, token_cache: oauth.SharedTokenCache, margin: int) -> oauth.AccessToken | None:
        """The token in ``token_cache`` this provider would hand out, with more than ``margin`` s left."""


def authority_host_for(cloud: str) -> str:
    return django_settings.MAILADMIN_AUTHORITY_HOST or CLOUDS.get(cloud, CLOUDS[DEFAULT_CLOUD]).authority_host


class EntraClientCredentials:
    """Microsoft Entra ID, OAuth 2.0 client credentials, in the settings' national cloud."""

    def __init__(self, config: ConnectionSettings, resource: Resource, trust: Trust) -> None:
        self.cloud = config.cloud if config.cloud in CLOUDS else DEFAULT_CLOUD
        self.authority_host = authority_host_for(self.cloud)
        self.tenant_id = config.tenant_id.strip()
        self.client_id = config.client_id.strip()
        self.credential = config.credential
        self.resource = resource
        self.trust = trust

    @property
    def cache_key(self) -> str:
        """A digest that changes with anything the token depends on and reveals none of it."""
        secret_digest = hashlib.sha256(self.credential.fingerprint_material().encode()).hexdigest()
        material = "\n".join(
            (
                self.cloud,
                self.authority_host.rstrip("/").lower(),
                self.tenant_id.lower(),
                self.client_id.lower(),
                self.resource.scope,
                self.credential.kind,
                secret_digest,
            )
        )
        return hashlib.sha256(material.encode()).hexdigest()

    def acquire(self, deadline: Deadline, token_cache: oauth.SharedTokenCache | None = None) -> oauth.AccessToken:
        return oauth.acquire_token(
            client_id=self.client_id,
            tenant_id=self.tenant_id,
            credential=self.credential,
            authority_host=self.authority_host,
            scope=self.resource.scope,
            deadline=deadline,
            ssl_context=self.trust.context,
            ca_bundle=self.trust.ca_bundle,
            token_cache=token_cache,
        )

    def redactions(self) -> tuple[str, ...]:
        return self.credential.redactions()

    def claim_warnings(self, claims: dict) -> list[str]:
        return token_warnings(claims, self.resource)

    def forget(self) -> None:
        """Nothing is kept: every acquire asks Entra ID."""

    def cached_token(self, token_cache: oauth.SharedTokenCache, margin: int) -> oauth.AccessToken | None:
        return token_cache.valid_token(client_id=self.client_id, scope=self.resource.scope, margin=margin)


class EntraCertificateCredentials(EntraClientCredentials):
    """Client credentials with a certificate: refused here once it has expired, before Entra ID says
    only "AADSTS700027" (its answer for an expired key)."""

    def acquire(self, deadline: Deadline, token_cache: oauth.SharedTokenCache | None = None) -> oauth.AccessToken:
        credential = self.credential
        if not credential:
            raise oauth.TokenError(
                "certificate-missing",
                "No certificate with a readable private key is saved (generate or upload one again).",
            )
        if isinstance(credential, CertificateCredential) and credential.expired(datetime.datetime.now(datetime.UTC)):
            assert credential.not_after is not None
            raise oauth.TokenError(
                "certificate-expired",
                f"The certificate {credential.thumbprint} expired on {credential.not_after:%Y-%m-%d}; "
                "no token was requested with it.",
            )
        return super().acquire(deadline, token_cache)


# By credential kind (values.Credential.kind).
PROVIDERS: dict[str, type[EntraClientCredentials]] = {
    "secret": EntraClientCredentials,
    "certificate": EntraCertificateCredentials,
    "federated": EntraClientCredentials,
}


def token_provider(config: ConnectionSettings, resource: Resource, trust: Trust) -> TokenProvider:
    return PROVIDERS[config.credential.kind](config, resource, trust)


def token_warnings(claims: dict, resource: Resource) -> list[str]:
    """What in a token's claims will make the resource refuse it (Exchange: 535 5.7.3; Graph: 401 or 403)."""
    warnings = []
    accepted = {variant for audience in resource.audiences for variant in (audience, audience + "/")}
    if claims.get("aud") not in accepted:
        hint = str(resource.audience_hint) or gettext(
            "The token's audience is %(actual)s, not Exchange Online (%(audience)s): Exchange will refuse it."
        )
        warnings.append(hint % {"actual": repr(claims.get("aud")), "audience": resource.audience})
    if resource.role not in (claims.get("roles") or []):
        warnings.append(str(resource.role_hint) % {"role": resource.role})
    return warnings


def shown_claims(token: str) -> dict:
    """The claims worth showing an administrator, ``exp`` as a UTC date."""
    full = oauth.token_claims(token)
    claims = {name: full[name] for name in SHOWN_CLAIMS if name in full}
    if isinstance(claims.get("exp"), int):
        claims["exp"] = datetime.datetime.fromtimestamp(claims["exp"], datetime.UTC).isoformat()
    return claims
