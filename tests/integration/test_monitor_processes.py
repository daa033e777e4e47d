"""Monitors as separate processes: two at once alert once; --every keeps checking and stops on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.processes import PROJECT, project_environment


@pytest.fixture
def environment(tmp_path, ca_bundle_path, fake_identity, fake_smtp, m365_tenant, fake_webhook) -> dict[str, str]:
    return project_environment(
        tmp_path, ca_bundle_path, fake_identity, m365_tenant, MAILADMIN_ALERT_TIMEOUT="2",
        TEST_WEBHOOK_URL=fake_webhook.url,
    )


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
