"""Page times with a long history: the Outgoing Email page, a Save, and the admin's history lists
with 20, 100 and 100,000 stored test runs and settings changes, in one run, on SQLite.

Each size gets a fresh throw-away instance (retention off: MAILADMIN_HISTORY_KEEP above the
size, so the rows stay). The same requests run in the same order at every size; the Saves come
last, so the rows they add are not in the lists measured. The page shows 20 runs and 20 changes
at every size, but an admin list shows up to 100 rows (list_per_page): with 20 stored it renders
20, so its ratio against 20 measures the page size as well as the table. Hence the middle size,
one full admin page. Prints the medians and the ratios largest / smallest and largest / full page
(target: flat, about 1.0). Run from the project root:

    .venv/bin/python bench/history_scale.py [--runs 100000] [--repeat 15]
"""

from __future__ import annotations

import argparse
import contextlib
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
ADMIN = "/admin/settings_app/"
REQUESTS = {
    "page GET": "/settings/outgoing-email/",
    "admin test-run list": ADMIN + "connectiontestrun/",
    "admin failed runs": ADMIN + "connectiontestrun/?outcome__exact=failure",
    "admin change list": ADMIN + "settingschange/",
}
NAMES = (*REQUESTS, "Save POST")


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


def _timed_ms(action) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def _requests(count: int) -> dict:
    """In a child process (one Django per size): ``count`` rows, a logged-in client, and one
    callable per request, each called once already (warm)."""
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

    def get(url: str):
        def action() -> None:
            assert client.get(url).status_code == 200

        return action

    actions = {name: get(url) for name, url in REQUESTS.items()}
    for action in actions.values():
        action()
    actions["Save POST"] = save  # warmed by the parent, after every list was measured
    return actions


def _child(count: int, folder: str, channel) -> None:
    """Serve the parent: receive a request's name, send back its time in ms; None ends."""
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
    actions = _requests(count)
    channel.send("ready")
    while (name := channel.recv()) is not None:
        channel.send(_timed_ms(actions[name]))


def run_sizes(counts: tuple[int, ...], repeat: int) -> list[dict[str, float]]:
    """The medians per request at each size. The sizes take turns request by request (the
    order rotating each round), so a burst of other load on the machine hits them alike."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with contextlib.ExitStack() as stack:
        channels, processes = [], []
        for count in counts:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="mailadmin-bench-"))
            parent, child = context.Pipe()
            process = context.Process(target=_child, args=(count, folder, child))
            process.start()
            channels.append(parent)
            processes.append(process)
        for channel in channels:
            assert channel.recv() == "ready"
        times: list[dict[str, list[float]]] = [{name: [] for name in NAMES} for _ in counts]
        for name in NAMES:
            for round_ in range(repeat + 1):  # round 0 is a warm-up, not counted
                for turn in range(len(counts)):
                    index = (turn + round_) % len(counts)
                    channels[index].send(name)
                    elapsed = channels[index].recv()
                    if round_:
                        times[index][name].append(elapsed)
        for channel, process in zip(channels, processes, strict=True):
            channel.send(None)
            process.join(60)
    return [{name: statistics.median(values) for name, values in size.items()} for size in times]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=20, help="Stored runs and changes, small size (default 20).")
    parser.add_argument("--page", type=int, default=100, help="One full admin page of rows (default 100).")
    parser.add_argument("--runs", type=int, default=100_000, help="Stored runs and changes, large size.")
    parser.add_argument("--repeat", type=int, default=15, help="Requests measured per kind (default 15).")
    options = parser.parse_args()
    sizes = (options.small, options.page, options.runs)
    times = run_sizes(sizes, options.repeat)
    print(f"medians of {options.repeat} requests, SQLite (target: ratios about 1.0, flat)")
    print(f"  {'request':<20} " + "".join(f"{count:>8} rows " for count in sizes) + "  ratio /small  ratio /page")
    for name in NAMES:
        small, page, large = (size[name] for size in times)
        print(
            f"  {name:<20} {small:8.1f} ms {page:8.1f} ms {large:8.1f} ms   {large / small:10.2f}  {large / page:10.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
