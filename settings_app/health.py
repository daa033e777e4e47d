"""The /healthz endpoint for load balancers, container health checks and monitoring.

It answers without a login, so it says only what an operator needs: whether the database
answers, whether the encryption key is loaded, whether settings were saved, and the last
connection test's outcome and time. No secret, version, host or server name.
"""

from __future__ import annotations

import datetime

from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from settings_app import crypto
from settings_app.models import ConnectionTestRun, OutgoingEmailSettings

_PROBE = "healthz"


def database_is_reachable() -> bool:
    """True when the default database answers a query."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        return False
    return True


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
    run = ConnectionTestRun.objects.only("outcome", "created_at").order_by("-created_at", "-pk").first()
    if run is None:
        return None
    return {"outcome": run.outcome, "at": run.created_at.astimezone(datetime.UTC).isoformat()}


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database answers and the key is loaded, else 503; the body says which."""
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
