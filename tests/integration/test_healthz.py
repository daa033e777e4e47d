from __future__ import annotations

import datetime
import time

import pytest

from settings_app.models import ConnectionTestRun, OutgoingEmailSettings

pytestmark = pytest.mark.django_db
URL = "/healthz"


def test_it_answers_200_without_login_on_a_fresh_instance(client):
    response = client.get(URL)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "status": "ok",
        "database": True,
        "encryption_key": True,
        "settings_present": False,
        "last_test": None,
    }


def test_it_reports_saved_settings_and_the_last_test(client):
    OutgoingEmailSettings.load()
    ConnectionTestRun.objects.create(outcome="failure", protocol="smtp", server="old.example:25")
    latest = ConnectionTestRun.objects.create(outcome="success", protocol="smtp", server="mail.example:587")

    body = client.get(URL).json()

    assert body["settings_present"] is True
    assert body["last_test"]["outcome"] == "success"
    assert datetime.datetime.fromisoformat(body["last_test"]["at"]) == latest.created_at


def test_it_answers_503_when_no_encryption_key_is_loaded(client, settings):
    settings.MAILADMIN_ENCRYPTION_KEYS = []
    response = client.get(URL)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["encryption_key"] is False
    assert body["database"] is True


def test_it_answers_503_when_the_key_is_not_a_fernet_key(client, settings):
    settings.MAILADMIN_ENCRYPTION_KEYS = ["not-a-key"]
    assert client.get(URL).status_code == 503


def test_it_is_never_cached_and_only_answers_get_and_head(client):
    response = client.get(URL)
    assert "no-store" in response["Cache-Control"]
    assert client.post(URL).status_code == 405
    head = client.head(URL)
    assert head.status_code == 200
    assert head["Content-Type"] == "application/json"
    assert "no-store" in head["Cache-Control"]
    assert head.content == b""


def test_it_shows_no_secret_version_or_host(client, settings):
    record = OutgoingEmailSettings.load()
    record.server = "smtp.office365.com"
    record.username = "mailer@contoso.example"
    record.client_secret = "abc8Q~very-secret-value"
    record.save()
    ConnectionTestRun.objects.create(outcome="success", protocol="smtp_microsoft365", server="smtp.office365.com:587")

    response = client.get(URL)

    text = response.content.decode()
    for leak in ("very-secret", "office365", "contoso", "django", "gunicorn", "sqlite", "postgres"):
        assert leak.lower() not in text.lower()
    assert set(response.json()) == {"status", "database", "encryption_key", "settings_present", "last_test"}


def test_it_answers_within_two_seconds_when_the_database_never_answers(client, monkeypatch, silent_server):
    from django.db import connection, connections

    if connection.vendor != "postgresql":
        pytest.skip("a silent SQLite file cannot be simulated; the PostgreSQL pass runs this")
    # New connections (the probe's own thread) go to a listener that never answers.
    silent = {**connections.settings["default"], "HOST": "127.0.0.1", "PORT": str(silent_server.port)}
    monkeypatch.setitem(connections.settings, "default", silent)

    started = time.monotonic()
    response = client.get(URL)
    elapsed = time.monotonic() - started

    assert response.status_code == 503
    assert response.json()["database"] is False
    assert elapsed < 2.0
    assert silent_server.connections >= 1
