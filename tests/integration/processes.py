"""A project of its own for tests that run manage.py in separate processes (their own SQLite file and key)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

PROJECT = Path(__file__).resolve().parents[2]
# Saved Microsoft 365 settings for the fake tenant (TEST_* variables), alerts to TEST_WEBHOOK_URL when given.
SETUP = """
import os
from settings_app.models import OutgoingEmailSettings
saved = OutgoingEmailSettings.load()
saved.protocol = "smtp_microsoft365"
saved.server = "localhost"
saved.port = int(os.environ["TEST_SMTP_PORT"])
saved.connection_security = "starttls"
saved.username = saved.sender_email = os.environ["TEST_MAILBOX"]
saved.client_id = os.environ["TEST_CLIENT_ID"]
saved.tenant_id = os.environ["TEST_TENANT_ID"]
saved.client_secret = os.environ["TEST_CLIENT_SECRET"]
saved.alert_webhook_url = os.environ.get("TEST_WEBHOOK_URL", "")
saved.save()
"""


def project_environment(tmp_path: Path, ca_bundle_path: Path, fake_identity, m365_tenant, **extra: str) -> dict:
    """The environment of a migrated project whose saved settings point at the fakes."""
    env = {
        **{
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("MAILADMIN_", "DJANGO_")) and name != "DATABASE_URL"
        },
        "PYTHONUNBUFFERED": "1",
        "DJANGO_SETTINGS_MODULE": "mailadmin.settings",
        "MAILADMIN_INSTANCE_DIR": str(tmp_path / "instance"),
        "MAILADMIN_SQLITE_PATH": str(tmp_path / "db.sqlite3"),
        "MAILADMIN_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "MAILADMIN_AUTHORITY_HOST": fake_identity.authority_host,
        "MAILADMIN_CA_BUNDLE": str(ca_bundle_path),
        "TEST_SMTP_PORT": str(m365_tenant.smtp_port),
        "TEST_MAILBOX": m365_tenant.mailbox,
        "TEST_CLIENT_ID": m365_tenant.client_id,
        "TEST_TENANT_ID": m365_tenant.tenant_id,
        "TEST_CLIENT_SECRET": m365_tenant.client_secret,
        **extra,
    }
    manage(env, "migrate", "--verbosity", "0")
    manage(env, "shell", "--command", SETUP)
    return env


def manage(env: dict, *arguments: str) -> str:
    """Run manage.py in its own process; its standard output (fails the test on a non-zero exit)."""
    done = subprocess.run(
        [sys.executable, "manage.py", *arguments], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout
