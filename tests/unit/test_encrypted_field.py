from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.db import connection

from settings_app.fields import UnreadableSecret
from settings_app.models import OutgoingEmailSettings

pytestmark = pytest.mark.django_db


def stored_column(name: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {name} FROM settings_app_outgoingemailsettings")
        return cursor.fetchone()[0]


def test_the_database_holds_only_ciphertext():
    settings = OutgoingEmailSettings.load()
    settings.client_secret = "very-secret-value"
    settings.password = "smtp-password"
    settings.save()
    assert "very-secret-value" not in stored_column("client_secret")
    assert stored_column("client_secret").startswith("gAAAA")
    assert "smtp-password" not in stored_column("password")
    assert OutgoingEmailSettings.load().client_secret == "very-secret-value"


def test_a_lost_key_makes_the_secret_unreadable_but_keeps_the_record(settings):
    record = OutgoingEmailSettings.load()
    record.client_secret = "very-secret-value"
    record.save()
    ciphertext = stored_column("client_secret")
    settings.MAILADMIN_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    reloaded = OutgoingEmailSettings.load()
    assert isinstance(reloaded.client_secret, UnreadableSecret)
    assert reloaded.unreadable_secrets() == ["client_secret"]
    reloaded.server = "smtp.office365.com"
    reloaded.save()
    assert stored_column("client_secret") == ciphertext


def test_lookups_on_a_secret_are_refused():
    with pytest.raises(NotImplementedError):
        OutgoingEmailSettings.objects.filter(client_secret="x").exists()


def test_load_always_returns_the_one_record():
    assert OutgoingEmailSettings.load().pk == OutgoingEmailSettings.load().pk == 1
    assert OutgoingEmailSettings.objects.count() == 1


def test_an_expression_is_written_as_sql_not_encrypted():
    from django.db.models import TextField, Value

    OutgoingEmailSettings.load()
    OutgoingEmailSettings.objects.update(client_secret=Value("stored-as-is", output_field=TextField()))
    assert stored_column("client_secret") == "stored-as-is"
