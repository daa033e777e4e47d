"""The scheduled check (manage.py monitor_outgoing_email) against the loopback fakes and webhook receiver."""

from __future__ import annotations

import datetime
import io
import logging
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from settings_app.models import AlertDelivery, ConnectionTestRun, MonitorState
from tests.fakes.webhook import SECRET_PATH

pytestmark = pytest.mark.django_db


@pytest.fixture
def monitored(m365_settings, fake_webhook, settings):
    """Working Microsoft 365 settings whose alerts go to the loopback receiver (generic JSON)."""
    settings.MAILADMIN_ALERT_TIMEOUT = 1.0
    settings.MAILADMIN_PUBLIC_URL = "https://mail-admin.example.com"
    m365_settings.alert_webhook_url = fake_webhook.url
    m365_settings.alert_webhook_kind = "json"
    m365_settings.save()
    return m365_settings


def monitor(*arguments: str) -> tuple[int, str]:
    """Run the command once: (exit status, output)."""
    out = io.StringIO()
    try:
        call_command("monitor_outgoing_email", *arguments, stdout=out, stderr=out)
    except SystemExit as exc:
        return int(exc.code), out.getvalue()
    return 0, out.getvalue()


def test_a_passing_first_check_is_recorded_as_schedule_and_alerts_nothing(monitored, fake_webhook):
    status, output = monitor()
    assert status == 0 and "passed" in output
    run = ConnectionTestRun.objects.get()
    assert (run.trigger, run.outcome) == ("schedule", "success")
    assert fake_webhook.requests == [] and AlertDelivery.objects.count() == 0


def test_failing_alerts_once_with_code_and_fix_then_recovered_once(monitored, m365_tenant, fake_smtp, fake_webhook):
    assert monitor()[0] == 0
    fake_smtp.disable_smtp_auth(m365_tenant.mailbox)

    status, output = monitor()
    assert status == 1
    run = ConnectionTestRun.objects.first()
    (alert,) = fake_webhook.bodies
    assert alert["event"] == "failing" and alert["outcome"] == "failure"
    assert (alert["step"], alert["code"]) == ("auth", "535-5.7.139")
    assert (run.failed_step["name"], run.failed_step["code"]) == ("auth", "535-5.7.139")
    assert alert["title"] == run.failed_step["finding"]["title"]
    assert alert["fix"] == run.failed_step["finding"]["fixes"][0]["text"] and alert["fix"]
    assert alert["url"] == f"https://mail-admin.example.com/settings/outgoing-email/?run={run.pk}#connection-test-result"
    assert datetime.datetime.fromisoformat(alert["at"]) == run.created_at
    assert "alert: failing" in output

    assert monitor()[0] == 1
    assert len(fake_webhook.requests) == 1, "a second failing check alerts nothing"

    fake_smtp.enable_smtp_auth(m365_tenant.mailbox)
    assert monitor()[0] == 0
    assert [body["event"] for body in fake_webhook.bodies] == ["failing", "recovered"]
    assert monitor()[0] == 0
    assert len(fake_webhook.requests) == 2
    deliveries = list(AlertDelivery.objects.order_by("pk").values_list("event", "status", "http_status", "attempts"))
    assert deliveries == [("failing", "sent", 200, 1), ("recovered", "sent", 200, 1)]


def test_a_different_failing_code_alerts_again(monitored, m365_tenant, fake_smtp, fake_webhook):
    fake_smtp.disable_smtp_auth(m365_tenant.mailbox)
    monitor()
    monitored.client_secret = "wrong-secret-value-123"
    monitored.save()
    monitor()
    assert [(body["event"], body["code"]) for body in fake_webhook.bodies] == [
        ("failing", "535-5.7.139"),
        ("failing", "AADSTS7000215"),
    ]


def test_only_the_newest_alert_deliveries_are_kept(monitored, m365_tenant, fake_smtp, fake_webhook, settings):
    settings.MAILADMIN_HISTORY_KEEP = 2
    fake_smtp.disable_smtp_auth(m365_tenant.mailbox)
    for secret in ("wrong-secret-value-123", str(m365_tenant.client_secret), "wrong-secret-value-456"):
        monitor()  # each check fails with another code than the one before: each alerts
        monitored.client_secret = secret
        monitored.save()
    assert [body["code"] for body in fake_webhook.bodies] == ["535-5.7.139", "AADSTS7000215", "535-5.7.139"]
    assert list(AlertDelivery.objects.values_list("code", flat=True)) == ["535-5.7.139", "AADSTS7000215"]


def test_a_secret_expiring_in_14_days_alerts_once(monitored, fake_webhook):
    expires_on = timezone.localdate() + datetime.timedelta(days=14)
    monitored.client_secret_expires_on = expires_on
    monitored.save()
    assert monitor()[0] == 0
    assert monitor()[0] == 0
    (alert,) = fake_webhook.bodies
    assert alert["event"] == "expiring" and alert["outcome"] == "success"
    assert alert["expires_on"] == expires_on.isoformat() and "14" in alert["title"]
    assert "Certificates & secrets" in alert["fix"]


def test_without_a_webhook_the_state_still_advances(m365_settings, m365_tenant, fake_smtp, fake_webhook):
    fake_smtp.disable_smtp_auth(m365_tenant.mailbox)
    assert monitor()[0] == 1
    assert AlertDelivery.objects.count() == 0
    assert MonitorState.objects.get().outcome == "failure"


def test_a_webhook_that_is_down_does_not_stop_the_check(monitored, m365_tenant, fake_smtp, unused_port, caplog):
    monitored.alert_webhook_url = f"http://127.0.0.1:{unused_port}{SECRET_PATH}"
    monitored.save()
    fake_smtp.disable_smtp_auth(m365_tenant.mailbox)
    status, output = monitor()
    assert status == 1
    delivery = AlertDelivery.objects.get()
    assert (delivery.status, delivery.http_status) == ("failed", None)
    assert (delivery.attempts, delivery.error) == (2, "connection")
    assert "webhook: failed (connection)" in output
    assert SECRET_PATH not in output and SECRET_PATH not in caplog.text


def test_a_slow_webhook_costs_at_most_two_timeouts(monitored, m365_tenant, fake_smtp, fake_webhook, settings):
    settings.MAILADMIN_ALERT_TIMEOUT = 0.5
    fake_webhook.stall(20)
    fake_smtp.disable_smtp_auth(m365_tenant.mailbox)
    started = time.monotonic()
    assert monitor()[0] == 1
    assert time.monotonic() - started < 5
    assert len(fake_webhook.requests) == 2
    delivery = AlertDelivery.objects.get()
    assert (delivery.status, delivery.error, delivery.attempts) == ("failed", "timeout", 2)


def test_a_server_error_is_retried_once(monitored, m365_tenant, fake_smtp, fake_webhook):
    fake_webhook.answer_with(500, times=1)
    fake_smtp.disable_smtp_auth(m365_tenant.mailbox)
    monitor()
    assert len(fake_webhook.requests) == 2
    delivery = AlertDelivery.objects.get()
    assert (delivery.status, delivery.http_status, delivery.attempts) == ("sent", 200, 2)


def test_a_refused_alert_is_not_retried(monitored, m365_tenant, fake_smtp, fake_webhook):
    fake_webhook.answer_with(404, "no such webhook", times=1)
    fake_smtp.disable_smtp_auth(m365_tenant.mailbox)
    monitor()
    assert len(fake_webhook.requests) == 1
    assert AlertDelivery.objects.get().error == "http-404"


@pytest.mark.parametrize("kind", ["teams", "slack"])
def test_each_kind_posts_its_own_format(monitored, m365_tenant, fake_smtp, fake_webhook, kind):
    monitored.alert_webhook_kind = kind
    monitored.save()
    fake_smtp.disable_smtp_auth(m365_tenant.mailbox)
    monitor()
    (request,) = fake_webhook.requests
    assert request.headers["Content-Type"] == "application/json"
    body = request.json
    if kind == "teams":
        assert body["type"] == "message"
        assert body["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive"
        assert body["attachments"][0]["content"]["type"] == "AdaptiveCard"
        assert "535-5.7.139" in str(body["attachments"][0]["content"]["body"])
    else:
        assert "Outgoing email is failing" in body["text"]
        assert [block["type"] for block in body["blocks"]] == ["header", "section", "context"]


def test_alerts_over_https_trust_the_project_ca_bundle(monitored, m365_tenant, fake_smtp):
    from tests.fakes.webhook import FakeWebhook

    with FakeWebhook(https=True) as receiver:
        monitored.alert_webhook_url = receiver.url
        monitored.save()
        fake_smtp.disable_smtp_auth(m365_tenant.mailbox)
        monitor()
        assert [body["event"] for body in receiver.bodies] == ["failing"]


def test_to_must_be_an_address_and_every_a_duration(monitored):
    with pytest.raises(CommandError, match="--to"):
        monitor("--to", "not-an-address")
    with pytest.raises(CommandError, match="--every"):
        monitor("--every", "soon")


def test_the_webhook_url_reaches_no_log_even_at_debug(
    monitored, m365_tenant, fake_smtp, fake_webhook, caplog, monkeypatch
):
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "urllib3.connectionpool", "requests", "settings_app"):
        caplog.set_level(logging.DEBUG, logger=name)
        monkeypatch.setattr(logging.getLogger(name), "propagate", True)
    fake_webhook.answer_with(500, times=1)
    fake_smtp.disable_smtp_auth(m365_tenant.mailbox)
    status, output = monitor()
    assert status == 1 and len(fake_webhook.requests) == 2
    assert SECRET_PATH not in caplog.text and SECRET_PATH not in output
    assert SECRET_PATH not in repr(list(AlertDelivery.objects.values()))
