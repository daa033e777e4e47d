"""Prometheus metrics at /metrics, the same in every worker process.

The gauges are read from the database at scrape time (the latest ConnectionTestRun,
the saved credential expiry) and the counters are MetricCounter rows incremented
atomically with F() expressions, so several gunicorn workers, the monitor and
management commands all add to one value.

A database write per message would cost the backend a third of its throughput on
SQLite, so counts are written at most once per FLUSH_INTERVAL while sending, and the
rest at the end of each web request, at each scrape and when the process exits. A
count can so lag by up to FLUSH_INTERVAL, never more, in a web worker or a command.

``count_message`` and ``count_token_request`` never raise: a database that cannot
count must not stop mail.
"""

from __future__ import annotations

import atexit
import contextlib
import hmac
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

from django.conf import settings as django_settings
from django.core.signals import request_finished
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
TRANSPORTS = ("smtp", "graph")
RESULTS = ("sent", "failed")
FLUSH_INTERVAL = 1.0
_pending: Counter[tuple[str, str]] = Counter()
_lock = threading.Lock()
_last_flush = [float("-inf")]


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
    with _lock:
        _pending[(name, labels)] += 1
        due = time.monotonic() - _last_flush[0] >= FLUSH_INTERVAL
    if due:
        flush()


def flush(*, at_exit: bool = False) -> None:
    """Write this process's pending counts to the database (kept for later when it does not answer).

    ``at_exit``: the interpreter is going away; counts the database refuses are dropped without a
    log line, since logging's streams may already be closed (pytest's capture, a stopping server).
    """
    with _lock:
        counts = dict(_pending)
        _pending.clear()
        _last_flush[0] = time.monotonic()
    for (name, labels), amount in counts.items():
        try:
            _add(name, labels, amount)
        except DatabaseError:
            if at_exit:
                continue
            logger.warning("The metric %s could not be counted: the database did not answer.", name)
            with _lock:
                _pending[(name, labels)] += amount


def _add(name: str, labels: str, amount: int) -> None:
    rows = MetricCounter.objects.filter(name=name, labels=labels)
    # A savepoint: a failed count must not break the caller's transaction.
    with transaction.atomic():
        if rows.update(value=F("value") + amount):
            return
        try:
            with transaction.atomic():
                MetricCounter.objects.create(name=name, labels=labels, value=amount)
        except IntegrityError:
            rows.update(value=F("value") + amount)


def _flush_if_pending(**kwargs) -> None:
    if _pending:
        flush()


def _flush_at_exit() -> None:
    if not _pending:
        return
    # The interpreter is going away: nothing may raise or log here.
    with contextlib.suppress(Exception):
        flush(at_exit=True)


request_finished.connect(_flush_if_pending, dispatch_uid="metrics.flush_after_request")
atexit.register(_flush_at_exit)


def _counter_values(name: str) -> dict[str, int]:
    return dict(MetricCounter.objects.filter(name=name).values_list("labels", "value"))


class DatabaseCollector(Collector):
    """Every mailadmin metric, read from the database when Prometheus scrapes."""

    def collect(self) -> Iterator[Metric]:
        flush()
        yield from self._latest_test()
        expiry = GaugeMetricFamily(
            "mailadmin_credential_expiry_timestamp_seconds",
            "When the credential in use expires (Unix time): credential=\"certificate\" at the certificate's "
            "notAfter, credential=\"client_secret\" at the start of its expiry day in UTC.",
            labels=["credential"],
        )
        saved = OutgoingEmailSettings.objects.filter(pk=OutgoingEmailSettings.SINGLETON_PK).first()
        ends = saved.credential_expiry() if saved is not None else None
        if ends is not None:
            expiry.add_metric([ends.credential], ends.ends_at.timestamp())
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
