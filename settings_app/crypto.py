"""Encryption of secrets at rest with Fernet keys from MAILADMIN_ENCRYPTION_KEYS.

The first key encrypts; every key decrypts, so a new key can be put first and the
old ones kept until ``rotate_encryption_key`` has re-encrypted everything.
"""

from __future__ import annotations

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver


class SecretUnreadable(Exception):
    """A stored secret cannot be decrypted with any configured key."""


@cache
def _multifernet() -> MultiFernet:
    keys = settings.MAILADMIN_ENCRYPTION_KEYS
    if not keys:
        raise ImproperlyConfigured("MAILADMIN_ENCRYPTION_KEYS holds no key.")
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key))
        except (ValueError, TypeError):
            raise ImproperlyConfigured(
                f"MAILADMIN_ENCRYPTION_KEYS: key {position} is not a valid Fernet key "
                "(32 url-safe base64-encoded bytes)."
            ) from None
    return MultiFernet(fernets)


@receiver(setting_changed)
def _forget_keys(*, setting: str, **kwargs) -> None:
    if setting == "MAILADMIN_ENCRYPTION_KEYS":
        _multifernet.cache_clear()


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
