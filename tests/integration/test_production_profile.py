"""The documented production variables give a deployment ``check --deploy`` has nothing to say about."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]


def production_env(instance_dir: Path, **overrides: str) -> dict[str, str]:
    """The process environment without any project variable, plus the documented production ones."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DJANGO_", "MAILADMIN_", "DATABASE_URL"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="mailadmin.settings",
        DJANGO_DEBUG="0",
        DJANGO_HTTPS="1",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(64),
        DJANGO_ALLOWED_HOSTS="mail-admin.example.com",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://mail-admin.example.com",
        MAILADMIN_INSTANCE_DIR=str(instance_dir),
    )
    env.update(overrides)
    return env


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_deploy_reports_nothing_for_the_production_profile(tmp_path):
    result = check_deploy(production_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_still_objects_to_plain_http(tmp_path):
    result = check_deploy(production_env(tmp_path, DJANGO_HTTPS="0"))
    assert result.returncode != 0
    for check in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert check in result.stderr


def test_check_deploy_still_objects_to_debug(tmp_path):
    result = check_deploy(production_env(tmp_path, DJANGO_DEBUG="1"))
    assert result.returncode != 0
    assert "security.W018" in result.stderr


def test_opting_into_hsts_preload_keeps_the_check_clean(tmp_path):
    result = check_deploy(production_env(tmp_path, DJANGO_HSTS_PRELOAD="1"))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [("DJANGO_HTTPS", "perhaps"), ("DJANGO_HSTS_PRELOAD", "perhaps"), ("DJANGO_SESSION_AGE", "soon")],
)
def test_a_mistyped_variable_stops_the_process_with_its_name(tmp_path, name, value):
    result = check_deploy(production_env(tmp_path, **{name: value}))
    assert result.returncode != 0
    assert name in result.stderr


RESPONSE_PROBE = """
import json
import django
django.setup()
from django.test import Client
client = Client(HTTP_HOST="mail-admin.example.com")
plain = client.get("/accounts/login/")
page = client.get("/accounts/login/", secure=True)
print(json.dumps({
    "plain": [plain.status_code, plain.headers.get("Location")],
    "headers": dict(page.headers),
    "csrf_cookie": {key: page.cookies["csrftoken"][key] for key in ("secure", "httponly", "samesite")},
}))
"""


def test_the_production_profile_redirects_to_https_and_sends_hsts(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", RESPONSE_PROBE],
        cwd=PROJECT,
        env=production_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["plain"] == [301, "https://mail-admin.example.com/accounts/login/"]
    headers = seen["headers"]
    assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert "script-src 'self';" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    assert seen["csrf_cookie"]["secure"] is True
