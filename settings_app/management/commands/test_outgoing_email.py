from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext

from settings_app import credentials
from settings_app.history import record_test_run
from settings_app.management.connection_test_arguments import add_test_arguments, checked_recipient
from settings_app.models import OutgoingEmailSettings
from settings_app.runner import run_connection_test


class Command(BaseCommand):
    help = (
        "Run the connection test (Save and test) on the saved outgoing email settings. "
        "Exits 0 when every step passes, 1 otherwise."
    )

    def add_arguments(self, parser):
        add_test_arguments(parser)
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args, to: str, json: bool, timeout: float | None, **options):
        to = checked_recipient(to)
        settings = OutgoingEmailSettings.load()
        unreadable = settings.unreadable_secrets()
        if unreadable:
            raise CommandError(
                gettext(
                    "The saved %(secrets)s can no longer be decrypted with MAILADMIN_ENCRYPTION_KEYS: "
                    "restore the old key or enter the secret again on the settings page."
                )
                % {"secrets": ", ".join(unreadable)}
            )
        # As Save and test: a pending certificate is tried, and promoted when the test passes.
        config = credentials.settings_to_test(settings)
        result = run_connection_test(config, test_recipient=to, timeout=timeout)
        run = record_test_run(result, settings, trigger="command")
        credentials.promote_if_proven(config, run.outcome == "success")
        if json:
            self.stdout.write(_json_dump({"run": run.pk, **result.as_dict()}))
        else:
            self._print_steps(result)
        if result.outcome != "success":
            raise SystemExit(1)

    def _print_steps(self, result) -> None:
        for step in result.steps:
            line = f"{step.status:<8} {step.name:<9} {step.label}"
            if step.status != "skipped":
                line += f" ({step.elapsed_ms} ms)"
            style = {"ok": self.style.SUCCESS, "failed": self.style.ERROR}.get(step.status, str)
            self.stdout.write(style(line))
            if step.status == "failed":
                self.stdout.write("         " + gettext("code: %(code)s") % {"code": step.code})
                if step.reply:
                    self.stdout.write("         " + gettext("server said: %(reply)s") % {"reply": step.reply})
                if step.finding:
                    self.stdout.write(f"         {step.finding.title}. {step.finding.explanation}")
                    for fix in step.finding.fixes:
                        self.stdout.write(f"         - {fix.text}")
                        for command_line in fix.command.splitlines():
                            self.stdout.write(f"             {command_line}")
            for warning in step.warnings:
                shown = "         " + gettext("warning: %(warning)s") % {"warning": warning}
                self.stdout.write(self.style.WARNING(shown))
        self.stdout.write(
            self.style.SUCCESS(gettext("Connection test passed."))
            if result.outcome == "success"
            else self.style.ERROR(gettext("Connection test failed."))
        )


def _json_dump(data: dict) -> str:
    return json.dumps(data, indent=2, default=str)
