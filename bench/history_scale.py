"""Page times with a long history: the Outgoing Email page, a Save, and the admin's test-run list
with 20 and with 100,000 stored test runs and settings changes, in one run, on SQLite.

Each size gets a fresh throw-away instance (retention off: MAILADMIN_HISTORY_KEEP above the
size, so the rows stay). Prints the medians and the ratio large / small per request (target:
flat, about 1.0). Run from the project root:

    .venv/bin/python bench/history_scale.py [--runs 100000] [--repeat 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))

STEP_NAMES = ("dns", "connect", "ehlo", "starttls", "ehlo_tls", "token", "auth", "send", "send_as", "quit")
REQUESTS = ("page GET", "Save POST", "admin test-run list")


def _step(name: str) -> dict:
    return {"name": name, "status": "ok", "elapsed_ms": 12, "reply": "250 2.0.0 OK", "detail": "", "code": "",
            "warnings": [], "finding": None, "label": name}


def _fill(count: int) -> None:
    """``count`` test runs and settings changes, oldest first, in bulk."""
    from settings_app.models import ConnectionTestRun, SettingsChange

    steps = [_step(name) for name in STEP_NAMES]
    for start in range(0, count, 5000):
        size = min(5000, count - start)
        ConnectionTestRun.objects.bulk_create(
            ConnectionTestRun(outcome="success", duration_ms=120, protocol="smtp_microsoft365",
                              server="smtp.office365.com:587", steps=steps, token_claims={"aud": "x"})
            for _ in range(size)
        )
        SettingsChange.objects.bulk_create(
            SettingsChange(changes=[{"field": "server", "label": "Server", "old": "a", "new": "b"}])
            for _ in range(size)
        )


def _median_ms(action, repeat: int) -> float:
    action()  # warm
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure(count: int, repeat: int) -> dict[str, float]:
    """In a child process (one Django per size): the medians of each request with ``count`` rows."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from settings_app.models import OutgoingEmailSettings

    call_command("migrate", verbosity=0)
    _fill(count)
    admin = get_user_model().objects.create_superuser("admin", "admin@example.com", "x")
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(admin)
    OutgoingEmailSettings.load()
    form = {"protocol": "smtp", "server": "mail.example.com", "port": "25", "connection_security": "none",
            "sender_email": "app@example.com", "alert_webhook_kind": "json", "action": "save"}

    def save() -> None:
        form["server"] = "mail1.example.com" if form["server"] == "mail.example.com" else "mail.example.com"
        assert client.post("/settings/outgoing-email/", form).status_code == 302

    return {
        "page GET": _median_ms(lambda: client.get("/settings/outgoing-email/"), repeat),
        "Save POST": _median_ms(save, repeat),
        "admin test-run list": _median_ms(lambda: client.get("/admin/settings_app/connectiontestrun/"), repeat),
    }


def _child(count: int, repeat: int, folder: str, channel) -> None:
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "mailadmin.settings",
            "MAILADMIN_INSTANCE_DIR": str(Path(folder) / "instance"),
            "MAILADMIN_SQLITE_PATH": str(Path(folder) / "db.sqlite3"),
            "MAILADMIN_HISTORY_KEEP": str(count * 10 + 1000),
        }
    )
    os.environ.pop("DATABASE_URL", None)
    import warnings

    warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)
    import django

    django.setup()
    channel.send(measure(count, repeat))


def run_size(count: int, repeat: int) -> dict[str, float]:
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="mailadmin-bench-") as folder:
        parent, child = context.Pipe()
        process = context.Process(target=_child, args=(count, repeat, folder, child))
        process.start()
        result = parent.recv()
        process.join(60)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=20, help="Stored runs and changes, small size (default 20).")
    parser.add_argument("--runs", type=int, default=100_000, help="Stored runs and changes, large size.")
    parser.add_argument("--repeat", type=int, default=15, help="Requests measured per kind (default 15).")
    options = parser.parse_args()
    small = run_size(options.small, options.repeat)
    large = run_size(options.runs, options.repeat)
    print(f"medians of {options.repeat} requests, SQLite (target: ratio about 1.0, flat)")
    for name in REQUESTS:
        print(
            f"  {name:<20} {options.small:>7} rows: {small[name]:6.1f} ms   {options.runs:>7} rows: "
            f"{large[name]:6.1f} ms   ratio {large[name] / small[name]:.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
