"""Storing connection test results; nothing secret is ever in a result."""

from __future__ import annotations

import datetime

from django.utils import timezone

from settings_app.models import ConnectionTestRun, OutgoingEmailSettings
from settings_app.runner import ConnectionTestResult

HISTORY_LENGTH = 20


def record_test_run(
    result: ConnectionTestResult, settings: OutgoingEmailSettings, *, user=None, trigger: str = "page"
) -> ConnectionTestRun:
    # Transports without a server of their own (Microsoft Graph) name their endpoint.
    endpoint = getattr(settings.transport, "endpoint", None)
    server = endpoint(settings.to_connection_settings()) if endpoint else f"{settings.server}:{settings.port}"
    return ConnectionTestRun.objects.create(
        user=user if user is not None and user.is_authenticated else None,
        trigger=trigger,
        outcome=result.outcome,
        duration_ms=result.duration_ms,
        protocol=settings.protocol,
        server=server,
        steps=[step.as_dict() for step in result.steps],
        token_claims=result.token_claims,
    )


def recent_test_runs() -> list[ConnectionTestRun]:
    return list(ConnectionTestRun.objects.select_related("user")[:HISTORY_LENGTH])


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
