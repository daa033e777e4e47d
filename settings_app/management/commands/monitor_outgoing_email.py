from __future__ import annotations

import signal
import threading
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, close_old_connections
from django.utils.translation import gettext

from settings_app.management.connection_test_arguments import add_test_arguments, checked_recipient
from settings_app.monitor import CheckReport, check_once, parse_duration


class Command(BaseCommand):
    help = (
        "The scheduled check: run the connection test on the saved outgoing email settings, record it in the "
        "history (trigger 'schedule') and alert the saved webhook when the outcome changes or a credential is "
        "about to expire. Without --every it runs once and exits 0 when the test passes, 1 when it fails."
    )

    def add_arguments(self, parser):
        add_test_arguments(parser)
        parser.add_argument(
            "--every",
            metavar="DURATION",
            default=None,
            help="Keep running and check at this interval (30s, 15m, 1h, 1d); stops cleanly on SIGTERM.",
        )

    def handle(self, *args, to: str, every: str | None, timeout: float | None, **options):
        to = checked_recipient(to)
        if every is None:
            if self._check(to, timeout).run.outcome != "success":
                raise SystemExit(1)
            return
        try:
            interval = parse_duration(every)
        except ValueError as exc:
            raise CommandError(f"--every: {exc}") from None
        self._keep_checking(interval, to, timeout)

    def _keep_checking(self, interval: float, to: str, timeout: float | None) -> None:
        stop = threading.Event()
        for signal_number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signal_number, lambda *_: stop.set())
        while not stop.is_set():
            started = time.monotonic()
            try:
                self._check(to, timeout)
            except DatabaseError as exc:
                # The database may be restarting; the next round tries again.
                self.stderr.write(gettext("The check could not be recorded: %(error)s") % {"error": type(exc).__name__})
            self.stdout.flush()
            close_old_connections()
            stop.wait(max(0.0, interval - (time.monotonic() - started)))

    def _check(self, to: str, timeout: float | None) -> CheckReport:
        report = check_once(to=to, timeout=timeout)
        run = report.run
        at = run.created_at.strftime("%Y-%m-%d %H:%M:%S %Z")
        if run.outcome == "success":
            self.stdout.write(self.style.SUCCESS(gettext("%(at)s connection test passed.") % {"at": at}))
        else:
            failed = report.result.failed_step
            line = gettext("%(at)s connection test failed at %(step)s [%(code)s].") % {
                "at": at,
                "step": failed.name if failed else "",
                "code": failed.code if failed else "",
            }
            self.stdout.write(self.style.ERROR(line))
        for alert in report.alerts:
            self.stdout.write("  " + gettext("alert: %(event)s") % {"event": alert.event} + f" ({alert.title})")
        for delivery in report.deliveries:
            shown = delivery.http_status if delivery.http_status is not None else delivery.error
            self.stdout.write("  " + gettext("webhook: %(status)s (%(answer)s)") % {"status": delivery.status,
                                                                                  "answer": shown})
        return report
