"""Storing connection test results; nothing secret is ever in a result."""

from __future__ import annotations

from settings_app.connection_test import ConnectionTestResult
from settings_app.models import ConnectionTestRun, OutgoingEmailSettings

HISTORY_LENGTH = 20


def record_test_run(
    result: ConnectionTestResult, settings: OutgoingEmailSettings, *, user=None, trigger: str = "page"
) -> ConnectionTestRun:
    return ConnectionTestRun.objects.create(
        user=user if user is not None and user.is_authenticated else None,
        trigger=trigger,
        outcome=result.outcome,
        duration_ms=result.duration_ms,
        protocol=settings.protocol,
        server=f"{settings.server}:{settings.port}",
        steps=[step.as_dict() for step in result.steps],
        token_claims=result.token_claims,
    )


def recent_test_runs() -> list[ConnectionTestRun]:
    return list(ConnectionTestRun.objects.select_related("user")[:HISTORY_LENGTH])
