"""generate_encryption_key and rotate_encryption_key, on a real database."""

from __future__ import annotations

import io

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import models
from django.db.models.functions import Cast

from settings_app.models import OutgoingEmailSettings

pytestmark = pytest.mark.django_db

PASSWORD = "smtp-password-value"
CLIENT_SECRET = "abc8Q~client-secret-value"


def new_key() -> str:
    return Fernet.generate_key().decode()


def stored(name: str) -> str:
    """The column as stored in the database (the ciphertext)."""
    return (
        OutgoingEmailSettings.objects.annotate(raw=Cast(name, output_field=models.TextField()))
        .values_list("raw", flat=True)
        .get()
    )


def rotate() -> str:
    out = io.StringIO()
    call_command("rotate_encryption_key", stdout=out)
    return out.getvalue()


@pytest.fixture
def old_key(settings) -> str:
    key = new_key()
    settings.MAILADMIN_ENCRYPTION_KEYS = [key]
    return key


@pytest.fixture
def saved_secrets(old_key) -> OutgoingEmailSettings:
    record = OutgoingEmailSettings.load()
    record.password = PASSWORD
    record.client_secret = CLIENT_SECRET
    record.save()
    return record


def test_generate_prints_a_new_fernet_key_each_time():
    first, second = io.StringIO(), io.StringIO()
    call_command("generate_encryption_key", stdout=first)
    call_command("generate_encryption_key", stdout=second)
    key = first.getvalue().strip()
    Fernet(key)
    assert key != second.getvalue().strip()


def test_it_reencrypts_every_secret_so_the_old_key_can_go(saved_secrets, old_key, settings):
    key = new_key()
    settings.MAILADMIN_ENCRYPTION_KEYS = [key, old_key]
    assert "Re-encrypted 2 secrets" in rotate()
    assert Fernet(key).decrypt(stored("password").encode()).decode() == PASSWORD
    settings.MAILADMIN_ENCRYPTION_KEYS = [key]
    record = OutgoingEmailSettings.load()
    assert (record.password, record.client_secret) == (PASSWORD, CLIENT_SECRET)
    assert record.unreadable_secrets() == []


def test_it_does_not_touch_the_settings_timestamp(saved_secrets, old_key, settings):
    before = OutgoingEmailSettings.load().updated_at
    settings.MAILADMIN_ENCRYPTION_KEYS = [new_key(), old_key]
    rotate()
    assert OutgoingEmailSettings.load().updated_at == before


def test_empty_secrets_are_not_counted(old_key, settings):
    record = OutgoingEmailSettings.load()
    record.client_secret = CLIENT_SECRET
    record.save()
    settings.MAILADMIN_ENCRYPTION_KEYS = [new_key(), old_key]
    assert "Re-encrypted 1 secret " in rotate()
    assert stored("password") == ""


def test_a_missing_old_key_names_the_secret_and_changes_nothing(saved_secrets, settings):
    before = {name: stored(name) for name in ("password", "client_secret")}
    settings.MAILADMIN_ENCRYPTION_KEYS = [new_key()]
    with pytest.raises(CommandError) as error:
        rotate()
    message = str(error.value)
    assert "Cannot decrypt the password of the outgoing email settings" in message
    assert "Nothing was changed" in message
    assert {name: stored(name) for name in before} == before


def test_an_invalid_key_is_a_clear_error(saved_secrets, settings):
    settings.MAILADMIN_ENCRYPTION_KEYS = ["not-a-fernet-key"]
    with pytest.raises(CommandError, match="key 1 is not a valid Fernet key"):
        rotate()


def test_an_invalid_key_is_refused_even_with_nothing_to_rotate(settings):
    settings.MAILADMIN_ENCRYPTION_KEYS = [new_key(), "not-a-fernet-key"]
    with pytest.raises(CommandError, match="key 2 is not a valid Fernet key"):
        rotate()


def test_no_secret_appears_in_the_output_or_errors(saved_secrets, settings):
    settings.MAILADMIN_ENCRYPTION_KEYS = [new_key()]
    with pytest.raises(CommandError) as error:
        rotate()
    assert PASSWORD not in str(error.value)
    assert CLIENT_SECRET not in str(error.value)
