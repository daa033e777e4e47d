"""The scheduled check: run the connection test, record it, alert on changes through the webhook.

``check_once`` is what ``manage.py monitor_outgoing_email`` runs each time. The alert
state lives in one MonitorState row changed only by compare-and-set on its version
(an UPDATE ... WHERE version = read version, atomic on SQLite and PostgreSQL), so of two
monitors that see the same change, exactly one claims it and alerts. A webhook that is
down or slow costs at most two attempts of MAILADMIN_ALERT_TIMEOUT and never fails the check.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field

from django.conf import settings as django_settings
from django.db.models import F
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext

from settings_app import alerts, webhooks
from settings_app.history import record_test_run
from settings_app.models import (
    AlertDelivery,
    ConnectionTestRun,
    CredentialType,
    MonitorState,
    OutgoingEmailSettings,
    WebhookKind,
)
from settings_app.retention import prune
from settings_app.runner import ConnectionTestResult, run_connection_test

CLAIM_ATTEMPTS = 5
RECENT_ALERTS = 10
MINIMUM_INTERVAL = 1.0
SCHEDULE_COMMAND = "manage.py monitor_outgoing_email"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass
class CheckReport:
    """One scheduled check: the recorded run, the alerts it claimed and how each delivery went."""

    run: ConnectionTestRun
    result: ConnectionTestResult
    alerts: list[alerts.Alert] = field(default_factory=list)
    deliveries: list[AlertDelivery] = field(default_factory=list)


def parse_duration(text: str) -> float:
    """Seconds in ``90``, ``90s``, ``15m``, ``1h`` or ``1d``; ValueError when not such a duration."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(gettext("'%(value)s' is not a duration such as 30s, 15m, 1h or 1d.") % {"value": text})
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
    if seconds < MINIMUM_INTERVAL:
        raise ValueError(gettext("The interval must be at least one second."))
    return seconds


def run_url(run: ConnectionTestRun | None, base_url: str | None = None) -> str:
    """The page showing ``run``, absolute when MAILADMIN_PUBLIC_URL (else ``base_url``) is known."""
    base = django_settings.MAILADMIN_PUBLIC_URL or (base_url or "").rstrip("/")
    path = reverse("outgoing_email")
    if run is not None:
        path += f"?run={run.pk}#connection-test-result"
    return base + path


def check_once(*, to: str = "", timeout: float | None = None) -> CheckReport:
    """Test the saved settings (a message only with ``to``), record the run as ``schedule``, alert on a change."""
    saved = OutgoingEmailSettings.load()
    result = run_connection_test(saved.to_connection_settings(), test_recipient=to, timeout=timeout)
    run = record_test_run(result, saved, trigger="schedule")
    claimed = claim_alerts(_observe(result, run, saved), timezone.localdate())
    report = CheckReport(run, result, claimed)
    for alert in claimed:
        delivery = deliver(alert, saved, run)
        if delivery is not None:
            report.deliveries.append(delivery)
    return report


def _observe(result: ConnectionTestResult, run: ConnectionTestRun, saved: OutgoingEmailSettings) -> alerts.Check:
    failed = result.failed_step
    finding = failed.finding if failed is not None else None
    expiry = saved.credential_expiry()
    expiries = {expiry.credential: expiry.expires_on} if expiry else {}
    return alerts.Check(
        outcome=result.outcome,
        at=run.created_at,
        step=failed.name if failed else "",
        code=failed.code if failed else "",
        title=finding.title if finding else (failed.detail if failed else ""),
        fix=finding.fixes[0].text if finding and finding.fixes else "",
        url=run_url(run),
        expiries=expiries,
    )


def claim_alerts(check: alerts.Check, today: datetime.date) -> list[alerts.Alert]:
    """The alerts ``check`` calls for, claimed by compare-and-set: [] when another monitor claimed them."""
    MonitorState.objects.get_or_create(pk=MonitorState.SINGLETON_PK)
    for _ in range(CLAIM_ATTEMPTS):
        row = MonitorState.objects.get(pk=MonitorState.SINGLETON_PK)
        current = alerts.State(row.outcome, row.code, row.expiry or {})
        due, new = alerts.decide(current, check, today)
        if new == current:
            return []
        claimed = MonitorState.objects.filter(pk=row.pk, version=row.version).update(
            outcome=new.outcome,
            code=new.code,
            expiry=new.expiry,
            version=F("version") + 1,
            updated_at=timezone.now(),
        )
        if claimed:
            return due
        # Another monitor changed the state first: decide again against what it stored.
    return []


def deliver(alert: alerts.Alert, saved: OutgoingEmailSettings, run: ConnectionTestRun | None) -> AlertDelivery | None:
    """Post ``alert`` to the saved webhook and record how it went; None when no webhook is saved."""
    posted = _post(alert, saved, run)
    return posted[0] if posted else None


def send_test_alert(
    saved: OutgoingEmailSettings, base_url: str | None = None
) -> tuple[AlertDelivery, webhooks.WebhookAnswer] | None:
    """Post a sample alert (event ``test``) to the saved webhook: the record and the webhook's answer."""
    return _post(alerts.sample_alert(timezone.now(), run_url(None, base_url)), saved, None)


def _post(
    alert: alerts.Alert, saved: OutgoingEmailSettings, run: ConnectionTestRun | None
) -> tuple[AlertDelivery, webhooks.WebhookAnswer] | None:
    url = saved.alert_webhook_url
    if not isinstance(url, str) or not url:
        return None
    kind = saved.alert_webhook_kind or WebhookKind.JSON
    answer = webhooks.post_json(
        url,
        alerts.payload(alert, kind),
        timeout=django_settings.MAILADMIN_ALERT_TIMEOUT,
        ca_bundle=django_settings.MAILADMIN_CA_BUNDLE,
    )
    delivery = AlertDelivery.objects.create(
        event=alert.event,
        kind=kind,
        status="sent" if answer.delivered else "failed",
        http_status=answer.http_status,
        attempts=answer.attempts,
        error=answer.error,
        code=alert.code,
        run=run,
    )
    prune(AlertDelivery)
    return delivery, answer


def monitor_status(saved: OutgoingEmailSettings | None) -> dict:
    """What the page shows about the monitor: the latest scheduled check, where alerts go, the last alerts.

    ``saved``: the settings the page shows (None when there are none).
    """
    url = saved.alert_webhook_url if saved is not None else ""
    return {
        "latest_check": ConnectionTestRun.objects.filter(trigger="schedule").first(),
        "webhook_saved": isinstance(url, str) and bool(url),
        "webhook_kind": saved.get_alert_webhook_kind_display() if saved is not None else "",
        "alerts": list(AlertDelivery.objects.all()[:RECENT_ALERTS]),
        # The credential whose expiry the check alerts about (the one in use), or a secret without its date.
        "expiry": saved.credential_expiry() if saved is not None else None,
        "secret_date_missing": saved is not None
        and saved.uses_entra_id
        and saved.credential_type == CredentialType.SECRET
        and not saved.client_secret_expires_on,
        "command": SCHEDULE_COMMAND,
    }
