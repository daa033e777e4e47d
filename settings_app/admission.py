"""Who may start a connection test now.

A test opens outbound connections and holds a server thread while it waits on them, so:
each server process runs at most MAILADMIN_MAX_CONCURRENT_TESTS at once (the other threads
stay free for pages and /healthz), a user runs one test at a time, and a user starts at most
MAILADMIN_TEST_RATE_LIMIT a minute. The slot is taken *before* the test starts: a row with
outcome RUNNING, written under a lock, which every later request counts.
"""

from __future__ import annotations

import datetime
import threading

from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from settings_app.history import finish_test_run, seconds_until_next_test, start_test_run
from settings_app.models import ConnectionTestRun, OutgoingEmailSettings
from settings_app.runner import ConnectionTestResult

# A RUNNING row older than the test budget plus this belongs to a process that died mid-test.
STALE_AFTER = datetime.timedelta(seconds=60)


class TestRefused(Exception):
    """No test may start now. ``code``: ``server-busy`` (this process runs its maximum),
    ``busy`` (the user's previous test still runs), ``rate-limited`` (``wait`` seconds left)."""

    def __init__(self, code: str, wait: int = 0) -> None:
        super().__init__(code)
        self.code = code
        self.wait = wait


class _ProcessSlots:
    """A counter of the tests this process runs, bounded by a limit read on each acquire."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.running = 0

    def acquire(self, limit: int) -> bool:
        with self._lock:
            if self.running >= limit:
                return False
            self.running += 1
            return True

    def release(self) -> None:
        with self._lock:
            self.running -= 1


SLOTS = _ProcessSlots()


class Admission:
    """A started test's reservation. Call ``finish`` exactly once, whatever happens to the test."""

    def __init__(self, run: ConnectionTestRun) -> None:
        self.run = run
        self._open = True

    def finish(self, result: ConnectionTestResult | None) -> ConnectionTestRun:
        """Record ``result`` (None: the test crashed) and free the slot."""
        try:
            return finish_test_run(self.run, result)
        finally:
            if self._open:
                self._open = False
                SLOTS.release()


def admit(settings: OutgoingEmailSettings, user) -> Admission:
    """Reserve a test for ``user`` on ``settings``, or raise TestRefused.

    The user's own limits are judged first: a second post of a user whose test runs is
    ``busy``, and must not hold one of this process's slots meanwhile (others would be told
    the server is full). A reservation that then finds no slot is withdrawn.
    """
    run = _reserve(settings, user)
    if not SLOTS.acquire(django_settings.MAILADMIN_MAX_CONCURRENT_TESTS):
        ConnectionTestRun.objects.filter(pk=run.pk).delete()
        raise TestRefused("server-busy")
    return Admission(run)


def _reserve(settings: OutgoingEmailSettings, user) -> ConnectionTestRun:
    with transaction.atomic():
        # Serialises one user's reservations on PostgreSQL; SQLite's BEGIN IMMEDIATE
        # already serialises every writer.
        list(get_user_model().objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True))
        alive_since = timezone.now() - datetime.timedelta(seconds=django_settings.MAILADMIN_TEST_TIMEOUT) - STALE_AFTER
        if ConnectionTestRun.objects.filter(
            user=user, outcome=ConnectionTestRun.RUNNING, created_at__gte=alive_since
        ).exists():
            raise TestRefused("busy")
        wait = seconds_until_next_test(user, django_settings.MAILADMIN_TEST_RATE_LIMIT)
        if wait:
            raise TestRefused("rate-limited", wait)
        return start_test_run(settings, user=user)
