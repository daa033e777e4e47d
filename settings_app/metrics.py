"""Prometheus metrics at /metrics, the same in every worker process.

Nothing is kept in a process: the gauges are read from the database at scrape time
(the latest ConnectionTestRun, the saved credential expiry) and the counters are
MetricCounter rows incremented atomically with F() expressions, so several gunicorn
workers, the monitor and management commands all add to one value.

``count_message`` and ``count_token_request`` never raise: a database that cannot
count must not stop mail.
"""

from __future__ import annotations

import datetime
import hmac
import logging
from collections.abc import Callable, Iterator

from django.conf import settings as django_settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from settings_app.models import ConnectionTestRun, MetricCounter, OutgoingEmailSettings

logger = logging.getLogger(__name__)

MESSAGES = "messages_sent"
TOKEN_REQUESTS = "token_requests"
TRANSPORTS = ("smtp",)
RESULTS = ("sent", "failed")


def count_message(transport: str, result: str) -> None:
    """One message sent (``result="sent"``) or not (``"failed"``) through ``transport``."""
    _increment(MESSAGES, f"{transport},{result}")


def count_token_request() -> None:
    """One request to the identity provider for an access token (not a cache hit)."""
    _increment(TOKEN_REQUESTS, "")


def count_delivery(transport: str, deliver: Callable, message) -> None:
    """Call ``deliver(message)`` and count the message as sent, or as failed when it raises (re-raised)."""
    try:
        deliver(message)
    except Exception:
        count_message(transport, "failed")
        raise
    count_message(transport, "sent")


def _increment(name: str, labels: str) -> None:
    rows = MetricCounter.objects.filter(name=name, labels=labels)
    try:
        # A savepoint: a failed count must not break the caller's transaction.
        with transaction.atomic():
            if rows.update(value=F("value") + 1):
                return
            try:
                with transaction.atomic():
                    MetricCounter.objects.create(name=name, labels=labels, value=1)
            except IntegrityError:
                rows.update(value=F("value") + 1)
    except DatabaseError:
        logger.warning("The metric %s could not be counted: the database did not answer.", name)


def _counter_values(name: str) -> dict[str, int]:
    return dict(MetricCounter.objects.filter(name=name).values_list("labels", "value"))


def _expiry_timestamp(day: datetime.date) -> float:
    return datetime.datetime.combine(day, datetime.time(), tzinfo=datetime.UTC).timestamp()


class DatabaseCollector(Collector):
    """Every mailadmin metric, read from the database when Prometheus scrapes."""

    def collect(self) -> Iterator[Metric]:
        yield from self._latest_test()
        expiry = GaugeMetricFamily(
            "mailadmin_credential_expiry_timestamp_seconds",
            "When a saved credential expires (Unix time, start of its expiry day in UTC).",
            labels=["credential"],
        )
        saved = OutgoingEmailSettings.objects.filter(pk=OutgoingEmailSettings.SINGLETON_PK).first()
        if saved is not None and saved.is_microsoft365 and saved.client_secret_expires_on:
            expiry.add_metric(["client_secret"], _expiry_timestamp(saved.client_secret_expires_on))
        yield expiry
        messages = CounterMetricFamily(
            "mailadmin_messages_sent",
            "Messages the email backend sent or failed to send.",
            labels=["transport", "result"],
        )
        counted = _counter_values(MESSAGES)
        keys = {f"{transport},{result}" for transport in TRANSPORTS for result in RESULTS} | set(counted)
        for key in sorted(keys):
            messages.add_metric(key.split(",", 1), counted.get(key, 0))
        yield messages
        tokens = CounterMetricFamily("mailadmin_token_requests", "Access token requests to the identity provider.")
        tokens.add_metric([], _counter_values(TOKEN_REQUESTS).get("", 0))
        yield tokens

    def _latest_test(self) -> Iterator[Metric]:
        run = ConnectionTestRun.objects.only("outcome", "duration_ms", "created_at").first()
        success = GaugeMetricFamily("mailadmin_connection_test_success", "1 when the latest connection test passed.")
        duration = GaugeMetricFamily(
            "mailadmin_connection_test_duration_seconds", "How long the latest connection test took."
        )
        timestamp = GaugeMetricFamily(
            "mailadmin_connection_test_timestamp_seconds", "When the latest connection test ran (Unix time)."
        )
        if run is not None:
            success.add_metric([], 1 if run.outcome == "success" else 0)
            duration.add_metric([], run.duration_ms / 1000)
            timestamp.add_metric([], run.created_at.timestamp())
        yield from (success, duration, timestamp)


REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(DatabaseCollector())


def _refusal(request: HttpRequest) -> HttpResponse | None:
    """None when the request may read the metrics, else the answer to give (or Http404)."""
    token = django_settings.MAILADMIN_METRICS_TOKEN
    if not token:
        if django_settings.MAILADMIN_METRICS_PUBLIC:
            return None
        raise Http404
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        response = HttpResponse("Authorization: Bearer <MAILADMIN_METRICS_TOKEN> required.\n", status=401,
                                content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        return HttpResponse("Wrong token.\n", status=403, content_type="text/plain")
    return None


@require_GET
@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus' text format. Needs the bearer token when MAILADMIN_METRICS_TOKEN is set; else 404 unless public."""
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
