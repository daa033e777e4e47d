"""A damaged shared token cache never stops mail, and is never unpickled: it is a miss, then overwritten."""

from __future__ import annotations

import base64
import json
import pickle

import pytest
from cryptography.fernet import Fernet
from django.core.mail import send_mail

from settings_app import crypto, token_cache
from settings_app.models import CachedAccessToken
from settings_app.tls import shared_trust

pytestmark = pytest.mark.django_db
RECIPIENT = "someone@example.net"


class Exploding:
    """Unpickling this would run code; reading the cache must never do that."""

    def __reduce__(self):
        return (pytest.fail, ("the token cache was unpickled",))


def cache_key(saved) -> str:
    return saved.transport.token_provider(saved.to_connection_settings(), shared_trust()).cache_key


def damaged_values() -> dict[str, str]:
    good_json = json.dumps({"AccessToken": {"x": {"secret": "not-a-token", "expires_on": "soon"}}})
    return {
        "garbage": "this is not Fernet at all",
        "truncated": crypto.encrypt(good_json)[:-20],
        "foreign pickle": base64.b64encode(pickle.dumps(Exploding())).decode(),
        "encrypted pickle": crypto.encrypt(base64.b64encode(pickle.dumps(Exploding())).decode()),
        "encrypted garbage JSON": crypto.encrypt("{not json"),
        "encrypted wrong shape": crypto.encrypt(good_json),
        "encrypted list": crypto.encrypt("[1, 2, 3]"),
        "encrypted with another key": Fernet(Fernet.generate_key()).encrypt(good_json.encode()).decode(),
    }


@pytest.fixture
def outgoing(settings, m365_settings):
    settings.EMAIL_BACKEND = "settings_app.backends.OutgoingEmailBackend"
    return m365_settings


@pytest.mark.parametrize("kind", list(damaged_values()))
def test_a_damaged_cache_is_a_miss_and_is_overwritten(kind, outgoing, fake_identity, fake_smtp):
    key = cache_key(outgoing)
    CachedAccessToken.objects.update_or_create(key=key, defaults={"value": damaged_values()[kind]})

    assert send_mail("After damage", "Body.", None, [RECIPIENT]) == 1
    assert send_mail("From the healed cache", "Body.", None, [RECIPIENT]) == 1

    assert [received.subject for received in fake_smtp.messages] == ["After damage", "From the healed cache"]
    assert len(fake_identity.token_requests) == 1
    healed = json.loads(crypto.decrypt(token_cache.stored_value(key)))
    assert healed["AccessToken"]


def test_fail_silently_holds_when_the_identity_service_is_down(outgoing, fake_identity, fake_smtp):
    fake_identity.respond_with_status(503)
    assert send_mail("Lost", "Body.", None, [RECIPIENT], fail_silently=True) == 0
    assert fake_smtp.messages == []


@pytest.fixture
def token_table_gone(outgoing):
    """The token cache's table renamed away for the test (DDL is transactional here and rolled back)."""
    from django.db import connection

    table = CachedAccessToken._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table} RENAME TO {table}_away")
    yield
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table}_away RENAME TO {table}")


def test_an_unreadable_cache_table_does_not_stop_mail(outgoing, token_table_gone, fake_identity, fake_smtp):
    assert send_mail("Without the cache", "Body.", None, [RECIPIENT]) == 1
    assert send_mail("Still without it", "Body.", None, [RECIPIENT]) == 1

    assert [received.subject for received in fake_smtp.messages] == ["Without the cache", "Still without it"]
    assert len(fake_identity.token_requests) == 2


def test_fail_silently_holds_when_the_settings_cannot_be_read(outgoing, fake_smtp):
    from django.db import connection

    table = outgoing._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table} RENAME TO {table}_away")
    try:
        assert send_mail("Lost", "Body.", None, [RECIPIENT], fail_silently=True) == 0
        with pytest.raises(OSError, match="database-unavailable"):
            send_mail("Raised", "Body.", None, [RECIPIENT])
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {table}_away RENAME TO {table}")
    assert fake_smtp.messages == []
