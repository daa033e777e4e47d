"""Two monitors in threads of one process, each with its own PostgreSQL connection, alert once.

The SQLite pass proves the same with two processes (test_monitor_processes.py); SQLite's
in-memory test database cannot take two writers, so this one runs on PostgreSQL only.
A barrier in front of alerts.decide (the real one then runs) makes both monitors read the
alert state before either stores it, so only the compare-and-set stops the second alert.
"""

from __future__ import annotations

import threading

import pytest
from django.conf import settings as django_settings
from django.db import connection

from settings_app import alerts
from settings_app.monitor import check_once

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        "postgresql" not in django_settings.DATABASES["default"]["ENGINE"], reason="needs two database writers"
    ),
]


def test_two_monitor_threads_send_one_alert(m365_settings, m365_tenant, fake_smtp, fake_webhook, monkeypatch):
    m365_settings.alert_webhook_url = fake_webhook.url
    m365_settings.save()
    fake_smtp.disable_smtp_auth(m365_tenant.mailbox)
    barrier = threading.Barrier(2, timeout=20)
    waited: set[int] = set()
    real_decide = alerts.decide

    def decide(*args, **kwargs):
        if threading.get_ident() not in waited:
            waited.add(threading.get_ident())
            barrier.wait()
        return real_decide(*args, **kwargs)

    monkeypatch.setattr(alerts, "decide", decide)
    reports, errors = [], []

    def monitor() -> None:
        try:
            reports.append(check_once())
        except Exception as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=monitor) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sorted(len(report.alerts) for report in reports) == [0, 1]
    assert [body["event"] for body in fake_webhook.bodies] == ["failing"]
