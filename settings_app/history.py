"""Storing connection test results; nothing secret is ever in a result."""

from __future__ import annotations

import datetime

from django.utils import timezone

from settings_app.models import ConnectionTestRun, Outcome, OutgoingEmailSettings
from settings_app.retention import prune
from settings_app.runner import ConnectionTestResult

HISTORY_LENGTH = 20


def _server_of(settings: OutgoingEmailSettings) -> str:
    """Where the test went: transports without a server of their own (Microsoft Graph) name their endpoint."""
    endpoint = getattr(settings.transport, "endpoint", None)
    return endpoint(settings.to_connection_settings()) if endpoint else f"{settings.server}:{settings.port}"


def record_test_run(
    result: ConnectionTestResult, settings: OutgoingEmailSettings, *, user=None, trigger: str = "page"
) -> ConnectionTestRun:
    run = ConnectionTestRun.objects.create(
        user=user if user is not None and user.is_authenticated else None,
        trigger=trigger,
        outcome=result.outcome,
        duration_ms=result.duration_ms,
        protocol=settings.protocol,
        server=_server_of(settings),
        steps=[step.as_dict() for step in result.steps],
        token_claims=result.token_claims,
    )
    prune(ConnectionTestRun)
    return run


def start_test_run(settings: OutgoingEmailSettings, *, user, trigger: str = "page") -> ConnectionTestRun:
    """The row of a test about to start (outcome RUNNING); ``finish_test_run`` completes it."""
    return ConnectionTestRun.objects.create(
        user=user,
        trigger=trigger,
        outcome=ConnectionTestRun.RUNNING,
        protocol=settings.protocol,
        server=_server_of(settings),
    )


def finish_test_run(run: ConnectionTestRun, result: ConnectionTestResult | None) -> ConnectionTestRun:
    """Store ``result`` in the row ``start_test_run`` wrote; None (the test crashed) stores "error"."""
    if result is None:
        run.outcome = Outcome.ERROR
    else:
        run.outcome = result.outcome
        run.duration_ms = result.duration_ms
        run.steps = [step.as_dict() for step in result.steps]
        run.token_claims = result.token_claims
    # An update, not save(): retention may have deleted the row meanwhile (a tiny
    # MAILADMIN_HISTORY_KEEP and tests finishing at once), which must not fail the test.
    ConnectionTestRun.objects.filter(pk=run.pk).update(
        outcome=run.outcome, duration_ms=run.duration_ms, steps=run.steps, token_claims=run.token_claims
    )
    prune(ConnectionTestRun)
    return run


def recent_test_runs() -> list[ConnectionTestRun]:
    finished = ConnectionTestRun.objects.exclude(outcome=ConnectionTestRun.RUNNING)
    return list(finished.select_related("user").defer("token_claims")[:HISTORY_LENGTH])


RATE_WINDOW = datetime.timedelta(minutes=1)


def seconds_until_next_test(user, limit: int) -> int:
    """0 when ``user`` may start a test now, else the seconds until they may (``limit`` per minute)."""
    now = timezone.now()
    recent = list(
        ConnectionTestRun.objects.filter(user=user, created_at__gte=now - RATE_WINDOW)
        .order_by("-created_at")
        .values_list("created_at", flat=True)[:limit]
    )
    if len(recent) < limit:
        return 0
    return max(1, int((recent[-1] + RATE_WINDOW - now).total_seconds()) + 1)
