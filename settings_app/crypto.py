"""Encryption of secrets at rest with Fernet keys from MAILADMIN_ENCRYPTION_KEYS.

The first key encrypts; every key decrypts, so a new key can be put first and the
old ones kept until ``rotate_encryption_key`` has re-encrypted everything.
"""

from __future__ import annotations

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver


class SecretUnreadable(Exception):
    """A stored secret cannot be decrypted with any configured key."""


class KeyConfigurationError(ImproperlyConfigured):
    """MAILADMIN_ENCRYPTION_KEYS (or the key file) is unusable; the message names it, never a key."""


@cache
def _multifernet() -> MultiFernet:
    keys = settings.MAILADMIN_ENCRYPTION_KEYS
    if not keys:
        raise KeyConfigurationError(
            getattr(settings, "MAILADMIN_ENCRYPTION_KEYS_ERROR", "") or "MAILADMIN_ENCRYPTION_KEYS holds no key."
        )
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key))
        except (ValueError, TypeError):
            raise KeyConfigurationError(
                f"MAILADMIN_ENCRYPTION_KEYS: key {position} is not a valid Fernet key "
                "(32 url-safe base64-encoded bytes)."
            ) from None
    return MultiFernet(fernets)


@receiver(setting_changed)
def _forget_keys(*, setting: str, **kwargs) -> None:
    if setting in ("MAILADMIN_ENCRYPTION_KEYS", "MAILADMIN_ENCRYPTION_KEYS_ERROR"):
        _multifernet.cache_clear()


@checks.register(checks.Tags.security)
def check_encryption_keys(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """At start-up (migrate, check), a clear line instead of a traceback on the first page.
    A warning, not an error: the server still starts, so /healthz can answer 503."""
    try:
        _multifernet()
    except KeyConfigurationError as exc:
        return [checks.Warning(str(exc), hint="See README.md, Configuration.", id="settings_app.W001")]
    return []


def check_keys() -> None:
    """Raise ImproperlyConfigured unless every configured key is a valid Fernet key."""
    _multifernet()


def encrypt(plaintext: str) -> str:
    return _multifernet().encrypt(plaintext.encode()).decode("ascii")


def decrypt(ciphertext: str) -> str:
    try:
        return _multifernet().decrypt(ciphertext.encode("ascii")).decode()
    except (InvalidToken, UnicodeError):
        raise SecretUnreadable("The stored secret cannot be decrypted with the configured keys.") from None


def reencrypt(ciphertext: str) -> str:
    """The same secret encrypted with the first key; raises SecretUnreadable."""
    try:
        return _multifernet().rotate(ciphertext.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeError):
        raise SecretUnreadable("The stored secret cannot be decrypted with the configured keys.") from None
