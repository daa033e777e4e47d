"""One access token per token lifetime for the whole deployment.

msal's token cache is kept as JSON text, encrypted with settings_app.crypto (it holds bearer
tokens), in the database that every process and host of a deployment already shares. Nothing
in this path is pickled: a row that does not decrypt or parse reads as a miss and is
overwritten by the next token. A token fetched by one web worker, command or queue worker
serves all of them until it has less than RENEWAL_MARGIN seconds left.

The row's key is the token provider's cache key, a digest of everything the token depends on:
new settings never find an old token. Saving the settings deletes every row, so re-saving
unchanged values (after fixing a permission in Entra ID, say) forces a fresh token. The
connection test does not use this module: it always asks Entra ID.
"""

from __future__ import annotations

import logging
import time

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.views.decorators.debug import sensitive_variables

from settings_app import crypto, metrics
from settings_app.deadline import Deadline
from settings_app.identity import TokenProvider
from settings_app.models import CachedAccessToken
from settings_app.oauth import AccessToken, SharedTokenCache

logger = logging.getLogger(__name__)

# msal treats an access token with less than five minutes left as expired; so do we,
# so that a token handed out here outlives any SMTP session it authenticates.
RENEWAL_MARGIN = 300
# How long a process that lost the race waits for the winner's token before asking itself.
LOCK_WAIT = 5.0
LOCK_POLL = 0.05


class CachedTokens:
    """A token provider whose tokens are shared through the database (see the module docstring)."""

    def __init__(self, provider: TokenProvider) -> None:
        self.provider = provider
        self.cache_key = provider.cache_key

    def acquire(self, deadline: Deadline, token_cache: SharedTokenCache | None = None) -> AccessToken:
        return get_token(self.provider, deadline=deadline)

    def redactions(self) -> tuple[str, ...]:
        return self.provider.redactions()

    def claim_warnings(self, claims: dict) -> list[str]:
        return self.provider.claim_warnings(claims)

    def forget(self) -> None:
        forget(self.cache_key)


@sensitive_variables()
def get_token(provider: TokenProvider, *, deadline: Deadline) -> AccessToken:
    """A token with at least RENEWAL_MARGIN seconds left; raises oauth.TokenError.

    A valid shared token is returned without any network call (``source == "cache"``).
    Otherwise one process at a time asks the identity service (``source ==
    "identity_provider"``) and stores the result for the others. The cache never stops
    mail: when the database cannot be read or written, the identity service is asked.
    """
    key = provider.cache_key
    token_cache = _unshared(_load, key) or SharedTokenCache()
    cached = provider.cached_token(token_cache, RENEWAL_MARGIN)
    if cached is not None:
        return cached
    leased = _unshared(_take_lease, key, max(1.0, deadline.budget))
    try:
        if leased is False:
            token_cache, cached = _wait_for_other_process(provider, deadline)
            if cached is not None:
                return cached
        metrics.count_token_request()
        token = provider.acquire(deadline, token_cache)
        if token_cache.changed:
            _unshared(_store, key, token_cache)
        return token
    finally:
        if leased:
            _unshared(_release_lease, key)


def _unshared(operation, *args):
    """``operation(*args)``, or None when the database fails it (in a savepoint, so that an
    enclosing transaction stays usable)."""
    try:
        with transaction.atomic():
            return operation(*args)
    except DatabaseError:
        logger.warning("The shared token cache is unavailable (database error); going without it.")
        return None


def _release_lease(key: str) -> None:
    CachedAccessToken.objects.filter(key=key).update(lease_until=0)


def forget(key: str) -> None:
    """Drop the shared tokens under ``key`` (the next send asks the identity service)."""
    CachedAccessToken.objects.filter(key=key).update(value="")


def stored_value(key: str) -> str:
    """The encrypted text kept under ``key`` ("" when none)."""
    return CachedAccessToken.objects.filter(key=key).values_list("value", flat=True).first() or ""


@sensitive_variables()
def _load(key: str) -> SharedTokenCache:
    stored = stored_value(key)
    if not stored:
        return SharedTokenCache()
    try:
        return SharedTokenCache(crypto.decrypt(stored))
    except crypto.SecretUnreadable:
        logger.warning("The shared access token cannot be decrypted (encryption key changed); fetching a new one.")
        return SharedTokenCache()


@sensitive_variables()
def _store(key: str, token_cache: SharedTokenCache) -> None:
    CachedAccessToken.objects.update_or_create(key=key, defaults={"value": crypto.encrypt(token_cache.serialize())})


def _take_lease(key: str, seconds: float) -> bool:
    """Whether this process may ask the identity service now; another holds the lease for ``seconds``."""
    now = time.time()
    try:
        with transaction.atomic():
            CachedAccessToken.objects.get_or_create(key=key)
    except IntegrityError:
        pass  # another process created the row at the same instant
    return CachedAccessToken.objects.filter(key=key, lease_until__lt=now).update(lease_until=now + seconds) == 1


def _wait_for_other_process(provider: TokenProvider, deadline: Deadline) -> tuple[SharedTokenCache, AccessToken | None]:
    """Another process is fetching a token: wait briefly for it rather than ask too."""
    give_up = time.monotonic() + min(LOCK_WAIT, deadline.remaining() / 2)
    while True:
        token_cache = _unshared(_load, provider.cache_key) or SharedTokenCache()
        cached = provider.cached_token(token_cache, RENEWAL_MARGIN)
        if cached is not None or time.monotonic() >= give_up:
            return token_cache, cached
        time.sleep(LOCK_POLL)


@receiver(post_save, sender="settings_app.OutgoingEmailSettings", dispatch_uid="token_cache.forget_all")
def _forget_on_save(sender, instance, raw: bool = False, **kwargs) -> None:
    CachedAccessToken.objects.all().delete()
