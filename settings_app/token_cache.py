"""One access token per token lifetime for the whole deployment.

msal's SerializableTokenCache is kept in Django's cache framework (the default
cache: a file cache in the instance folder unless MAILADMIN_CACHE_URL says
otherwise), encrypted with settings_app.crypto because it holds bearer tokens.
Every process of a deployment reads the same entry, so a token fetched by one
web worker, a management command or a queue worker serves all of them until
msal considers it due for renewal (less than five minutes left).

The entry's key is a fingerprint of what the token depends on (cloud, authority
host, tenant, client ID and a SHA-256 of the client secret): new settings never
find the old token. Saving the settings also deletes the entries explicitly, so
re-saving unchanged values (after fixing a permission in Entra ID, say) forces a
fresh token. The connection test does not use this module: it always asks Entra ID.

msal is imported here for its cache data structure only; every network call to
the identity service still goes through settings_app.oauth.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
import time
from dataclasses import dataclass, field

import msal
from django.core.cache import caches
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver

from settings_app import crypto, metrics, oauth
from settings_app.clouds import CLOUDS, DEFAULT_CLOUD
from settings_app.connection_test import authority_host_for
from settings_app.deadline import Deadline

logger = logging.getLogger(__name__)

CACHE_ALIAS = "default"
KEY_PREFIX = "mailadmin:msal-token-cache:"
# msal treats an access token with less than five minutes left as expired; so do we,
# so that a token handed out here outlives any SMTP session it authenticates.
RENEWAL_MARGIN = 300
# How long a process that lost the race waits for the winner's token before asking itself.
LOCK_WAIT = 5.0
LOCK_POLL = 0.05


@dataclass(frozen=True)
class TokenSource:
    """Everything a client-credentials token depends on."""

    cloud: str
    authority_host: str
    tenant_id: str
    client_id: str
    client_secret: str = field(repr=False)

    @classmethod
    def of(cls, *, cloud: str, tenant_id: str, client_id: str, client_secret: str) -> TokenSource:
        """The source for saved settings; the authority host follows MAILADMIN_AUTHORITY_HOST."""
        cloud = cloud if cloud in CLOUDS else DEFAULT_CLOUD
        return cls(cloud, authority_host_for(cloud), tenant_id.strip(), client_id.strip(), client_secret)

    @property
    def scope(self) -> str:
        return CLOUDS[self.cloud].scope

    @property
    def cache_key(self) -> str:
        """The cache entry's key: a digest that changes with any input and reveals none of them."""
        secret_digest = hashlib.sha256(self.client_secret.encode()).hexdigest()
        material = "\n".join(
            (
                self.cloud,
                self.authority_host.rstrip("/").lower(),
                self.tenant_id.lower(),
                self.client_id.lower(),
                secret_digest,
            )
        )
        return KEY_PREFIX + hashlib.sha256(material.encode()).hexdigest()


def get_token(
    source: TokenSource, *, deadline: Deadline, ssl_context: ssl.SSLContext, ca_bundle: str = ""
) -> oauth.AccessToken:
    """A token for ``source.scope`` with at least RENEWAL_MARGIN seconds left; raises oauth.TokenError.

    ``ssl_context`` and ``ca_bundle`` are as for oauth.acquire_token.

    A valid token in the shared cache is returned without any network call
    (``source == "cache"``). Otherwise one process at a time asks Entra ID
    (``source == "identity_provider"``) and stores the result for the others.
    """
    backend = caches[CACHE_ALIAS]
    token_cache = _load(source)
    cached = _valid_token(token_cache, source)
    if cached is not None:
        return cached
    lock_key = source.cache_key + ":lock"
    locked = backend.add(lock_key, "1", timeout=max(1, round(deadline.budget)))
    try:
        if not locked:
            token_cache, cached = _wait_for_other_process(source, deadline)
            if cached is not None:
                return cached
        metrics.count_token_request()
        token = oauth.acquire_token(
            client_id=source.client_id,
            tenant_id=source.tenant_id,
            client_secret=source.client_secret,
            authority_host=source.authority_host,
            scope=source.scope,
            deadline=deadline,
            ssl_context=ssl_context,
            ca_bundle=ca_bundle,
            token_cache=token_cache,
        )
        if token_cache.has_state_changed:
            _store(source, token_cache, token.expires_in)
        return token
    finally:
        if locked:
            backend.delete(lock_key)


def forget(source: TokenSource) -> None:
    """Drop the cached tokens of ``source`` (the next send asks Entra ID)."""
    caches[CACHE_ALIAS].delete(source.cache_key)


def _load(source: TokenSource) -> msal.SerializableTokenCache:
    token_cache = msal.SerializableTokenCache()
    stored = caches[CACHE_ALIAS].get(source.cache_key)
    if stored:
        try:
            token_cache.deserialize(crypto.decrypt(stored))
        except crypto.SecretUnreadable:
            logger.warning("The cached access token cannot be decrypted (encryption key changed); fetching a new one.")
        except ValueError:
            logger.warning("The cached access token is not readable; fetching a new one.")
    return token_cache


def _store(source: TokenSource, token_cache: msal.SerializableTokenCache, lifetime: int) -> None:
    caches[CACHE_ALIAS].set(source.cache_key, crypto.encrypt(token_cache.serialize()), timeout=max(lifetime, 60))


def _valid_token(token_cache: msal.SerializableTokenCache, source: TokenSource) -> oauth.AccessToken | None:
    """The cached token msal itself would return, found without building an msal app.

    Building one costs a tenant-discovery request to Entra ID on every call, so a
    cache hit would still need the identity service to be up.
    """
    now = time.time()
    for entry in token_cache.search(
        msal.TokenCache.CredentialType.ACCESS_TOKEN, target=[source.scope], query={"client_id": source.client_id}
    ):
        left = int(entry.get("expires_on", 0)) - now
        if left < RENEWAL_MARGIN:
            continue
        if "refresh_on" in entry and int(entry["refresh_on"]) < now:
            continue
        return oauth.AccessToken(entry["secret"], int(left), "cache")
    return None


def _wait_for_other_process(
    source: TokenSource, deadline: Deadline
) -> tuple[msal.SerializableTokenCache, oauth.AccessToken | None]:
    """Another process is fetching a token: wait briefly for it rather than ask Entra ID too."""
    give_up = time.monotonic() + min(LOCK_WAIT, deadline.remaining() / 2)
    while True:
        token_cache = _load(source)
        cached = _valid_token(token_cache, source)
        if cached is not None or time.monotonic() >= give_up:
            return token_cache, cached
        time.sleep(LOCK_POLL)


def _source_of_saved(instance) -> TokenSource | None:
    secret = instance.client_secret
    if not isinstance(secret, str) or not (instance.client_id and instance.tenant_id):
        return None
    return TokenSource.of(
        cloud=instance.cloud, tenant_id=instance.tenant_id, client_id=instance.client_id, client_secret=secret
    )


@receiver(pre_save, sender="settings_app.OutgoingEmailSettings", dispatch_uid="token_cache.forget_previous")
def _forget_previous_settings(sender, instance, raw: bool = False, **kwargs) -> None:
    if raw or instance.pk is None:
        return
    previous = sender.objects.filter(pk=instance.pk).first()
    source = _source_of_saved(previous) if previous is not None else None
    if source is not None:
        forget(source)


@receiver(post_save, sender="settings_app.OutgoingEmailSettings", dispatch_uid="token_cache.forget_saved")
def _forget_saved_settings(sender, instance, raw: bool = False, **kwargs) -> None:
    source = _source_of_saved(instance)
    if source is not None:
        forget(source)
