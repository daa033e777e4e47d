"""Monitors as separate processes: two at once alert once; --every keeps checking and stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

PROJECT = Path(__file__).resolve().parents[2]
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
saved.alert_webhook_url = os.environ["TEST_WEBHOOK_URL"]
saved.save()
"""


@pytest.fixture
def environment(tmp_path, ca_bundle_path, fake_identity, fake_smtp, m365_tenant, fake_webhook) -> dict[str, str]:
    """A project of its own (SQLite file, key) whose saved settings point at the fakes, migrated and set up."""
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
        "MAILADMIN_ALERT_TIMEOUT": "2",
        "TEST_SMTP_PORT": str(m365_tenant.smtp_port),
        "TEST_MAILBOX": m365_tenant.mailbox,
        "TEST_CLIENT_ID": m365_tenant.client_id,
        "TEST_TENANT_ID": m365_tenant.tenant_id,
        "TEST_CLIENT_SECRET": m365_tenant.client_secret,
        "TEST_WEBHOOK_URL": fake_webhook.url,
    }
    for arguments in (("migrate", "--verbosity", "0"), ("shell", "--command", SETUP)):
        done = subprocess.run(
            [sys.executable, "manage.py", *arguments], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr[-2000:]
    return env


# Runs the command with a barrier at the moment each monitor has read the alert state and is
# about to decide: both hold the same version, so only the compare-and-set keeps the second
# one from alerting too. The barrier is files in TEST_BARRIER_DIR; the real decide then runs.
WITH_BARRIER = """
import os, sys, time
from pathlib import Path
from settings_app import alerts
real_decide = alerts.decide
folder = Path(os.environ["TEST_BARRIER_DIR"])
def decide(*args, **kwargs):
    if not (folder / str(os.getpid())).exists():
        (folder / str(os.getpid())).touch()
        give_up = time.monotonic() + 20
        while len(list(folder.iterdir())) < 2 and time.monotonic() < give_up:
            time.sleep(0.01)
    return real_decide(*args, **kwargs)
alerts.decide = decide
from django.core.management import execute_from_command_line
execute_from_command_line(["manage.py", "monitor_outgoing_email"])
"""


def start_monitor(env: dict[str, str], *arguments: str, barrier: Path | None = None) -> subprocess.Popen:
    command = ["-c", WITH_BARRIER] if barrier else ["manage.py", "monitor_outgoing_email", *arguments]
    return subprocess.Popen(
        [sys.executable, *command],
        cwd=PROJECT,
        env={**env, "TEST_BARRIER_DIR": str(barrier)} if barrier else env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_two_monitors_at_once_send_one_alert_per_change(
    environment, tmp_path, m365_tenant, fake_smtp, fake_webhook
):
    changes = (fake_smtp.disable_smtp_auth, fake_smtp.enable_smtp_auth, fake_smtp.disable_smtp_auth)
    for round_number, change in enumerate(changes, start=1):
        change(m365_tenant.mailbox)
        barrier = tmp_path / f"barrier-{round_number}"
        barrier.mkdir()
        monitors = [start_monitor(environment, barrier=barrier), start_monitor(environment, barrier=barrier)]
        outputs = [monitor.communicate(timeout=60)[0] for monitor in monitors]
        assert all("Traceback" not in output for output in outputs), outputs
        assert len(list(barrier.iterdir())) == 2, "both monitors read the state before either stored it"
        assert sum("alert:" in output for output in outputs) == 1, outputs
        assert len(fake_webhook.requests) == round_number, outputs
    assert [body["event"] for body in fake_webhook.bodies] == ["failing", "recovered", "failing"]


def test_every_keeps_checking_and_stops_cleanly_on_sigterm(environment, fake_webhook):
    monitor = start_monitor(environment, "--every", "1s")
    try:
        lines = []
        deadline = time.monotonic() + 30
        while sum("connection test" in line for line in lines) < 2 and time.monotonic() < deadline:
            lines.append(monitor.stdout.readline())
        assert sum("connection test passed" in line for line in lines) == 2, lines
    finally:
        monitor.send_signal(signal.SIGTERM)
        status = monitor.wait(timeout=15)
    assert status == 0
    assert fake_webhook.requests == []
