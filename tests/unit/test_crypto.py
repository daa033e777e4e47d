from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from settings_app import crypto

OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()


def test_it_round_trips_and_never_stores_plaintext(settings):
    settings.MAILADMIN_ENCRYPTION_KEYS = [NEW_KEY]
    ciphertext = crypto.encrypt("hunter2-secret")
    assert "hunter2" not in ciphertext
    assert crypto.decrypt(ciphertext) == "hunter2-secret"


def test_every_key_decrypts_and_the_first_encrypts(settings):
    settings.MAILADMIN_ENCRYPTION_KEYS = [OLD_KEY]
    old = crypto.encrypt("value")
    settings.MAILADMIN_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    assert crypto.decrypt(old) == "value"
    rotated = crypto.reencrypt(old)
    settings.MAILADMIN_ENCRYPTION_KEYS = [NEW_KEY]
    assert crypto.decrypt(rotated) == "value"


def test_an_unknown_key_gives_secret_unreadable_without_the_ciphertext(settings):
    settings.MAILADMIN_ENCRYPTION_KEYS = [OLD_KEY]
    ciphertext = crypto.encrypt("value")
    settings.MAILADMIN_ENCRYPTION_KEYS = [NEW_KEY]
    with pytest.raises(crypto.SecretUnreadable) as caught:
        crypto.decrypt(ciphertext)
    assert ciphertext not in str(caught.value)


def test_a_malformed_key_is_reported_by_position(settings):
    settings.MAILADMIN_ENCRYPTION_KEYS = [NEW_KEY, "not-a-key"]
    with pytest.raises(ImproperlyConfigured, match="key 2"):
        crypto.encrypt("value")
