"""A bad encryption key configuration is a clear message naming the variable or the file:
a start-up warning, 503 pages and /healthz 503 with encryption_key false; never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.integration.test_production_server import ROOT, _server_env

pytestmark = pytest.mark.django_db


def manage_check(tmp_path, **env: str) -> subprocess.CompletedProcess:
    base = {**_server_env(tmp_path / "instance", tmp_path / "db.sqlite3", 8000), **env}
    base.pop("MAILADMIN_ENCRYPTION_KEYS")
    base.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=base, capture_output=True, text=True, timeout=60
    )


def test_a_directory_where_the_key_file_should_be_is_named_at_start_up(tmp_path):
    (tmp_path / "instance" / "encryption.key").mkdir(parents=True)

    checked = manage_check(tmp_path)

    output = checked.stdout + checked.stderr
    assert "Traceback" not in output
    assert "encryption.key: cannot use this file (it is a directory)" in output
    assert "MAILADMIN_ENCRYPTION_KEYS" in output


def test_a_malformed_key_variable_is_named_at_start_up(tmp_path):
    checked = manage_check(tmp_path, MAILADMIN_ENCRYPTION_KEYS="not-a-fernet-key")

    output = checked.stdout + checked.stderr
    assert "Traceback" not in output
    assert "MAILADMIN_ENCRYPTION_KEYS: key 1 is not a valid Fernet key" in output
    assert "not-a-fernet-key" not in output


def test_the_settings_page_answers_503_with_the_variable_not_a_500(admin_client, m365_settings, settings):
    settings.MAILADMIN_ENCRYPTION_KEYS = ["not-a-fernet-key"]

    response = admin_client.get("/settings/outgoing-email/")

    assert response.status_code == 503
    page = response.content.decode()
    assert "MAILADMIN_ENCRYPTION_KEYS: key 1 is not a valid Fernet key" in page
    assert "not-a-fernet-key" not in page


def test_an_unreadable_key_file_gives_503_pages_and_healthz(admin_client, m365_settings, settings):
    settings.MAILADMIN_ENCRYPTION_KEYS = []
    settings.MAILADMIN_ENCRYPTION_KEYS_ERROR = "instance/encryption.key: cannot use this file (it is a directory)"

    page = admin_client.get("/settings/outgoing-email/")
    health = admin_client.get("/healthz")

    assert page.status_code == 503
    assert "instance/encryption.key: cannot use this file" in page.content.decode()
    assert health.status_code == 503
    assert health.json()["encryption_key"] is False
