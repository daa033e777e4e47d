"""The /healthz endpoint for load balancers, container health checks and monitoring.

It answers without a login, so it says only what an operator needs: whether the database
answers, whether the encryption key is loaded, whether settings were saved, and the last
connection test's outcome and time. No secret, version, host or server name.
"""

from __future__ import annotations

import datetime
import threading

from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from settings_app import crypto
from settings_app.models import ConnectionTestRun, OutgoingEmailSettings

_PROBE = "healthz"
# How long /healthz waits for the database: a silent host (libpq's connect_timeout is 10 s)
# or a stuck server must give 503 in time, not a hanging load balancer check.
PROBE_WAIT = 1.5
# Probes still waiting on a silent database; beyond this many, the answer is "unreachable" at once.
_WAITING_PROBES = threading.BoundedSemaphore(16)


def _select_one() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        return False
    finally:
        # This thread's own connection; the request's connection is left alone.
        connection.close()
    return True


def database_is_reachable(wait: float = PROBE_WAIT) -> bool:
    """True when the default database answers a query within ``wait`` seconds.

    The query runs in a thread of its own, with its own connection, so that a database
    that never answers cannot hold the request longer than ``wait``.
    """
    if not _WAITING_PROBES.acquire(blocking=False):
        return False
    answered = threading.Event()
    outcome: dict = {}

    def probe() -> None:
        try:
            outcome["reachable"] = _select_one()
        finally:
            _WAITING_PROBES.release()
            answered.set()

    threading.Thread(target=probe, name="healthz-probe", daemon=True).start()
    answered.wait(wait)
    return outcome.get("reachable", False)


def encryption_key_is_loaded() -> bool:
    """True when MAILADMIN_ENCRYPTION_KEYS holds a usable key (it encrypts and decrypts)."""
    try:
        return crypto.decrypt(crypto.encrypt(_PROBE)) == _PROBE
    except (ImproperlyConfigured, crypto.SecretUnreadable):
        return False


def settings_are_present() -> bool:
    """True once the outgoing email settings have been saved; raises DatabaseError."""
    return OutgoingEmailSettings.objects.filter(pk=OutgoingEmailSettings.SINGLETON_PK).exists()


def last_test() -> dict | None:
    """The latest connection test's outcome and time (UTC, ISO 8601), or None; raises DatabaseError."""
    finished = ConnectionTestRun.objects.exclude(outcome=ConnectionTestRun.RUNNING)
    run = finished.only("outcome", "created_at").order_by("-created_at", "-pk").first()
    if run is None:
        return None
    return {"outcome": run.outcome, "at": run.created_at.astimezone(datetime.UTC).isoformat()}


@require_safe
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database answers and the key is loaded, else 503; the body says which.
    HEAD answers the same status and headers."""
    database = database_is_reachable()
    key = encryption_key_is_loaded()
    settings_present = recent = None
    if database:
        try:
            settings_present = settings_are_present()
            recent = last_test()
        except DatabaseError:
            database = False
    healthy = database and key
    body = {
        "status": "ok" if healthy else "unavailable",
        "database": database,
        "encryption_key": key,
        "settings_present": settings_present,
        "last_test": recent,
    }
    return JsonResponse(body, status=200 if healthy else 503)
