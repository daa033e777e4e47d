"""Throughput of OutgoingEmailBackend against Django's stock SMTP backend, on loopback fakes.

Starts the fakes from tests/fakes (FakeIdentity for Entra ID, FakeExchange for
Exchange Online SMTP with STARTTLS) in a child process (bench/harness.py), so that
they do not compete with the backends for this process's GIL, plus a throw-away
instance folder and database. It then sends the same messages through

- OutgoingEmailBackend in Microsoft 365 mode (XOAUTH2, token from the shared cache), and
- Django's stock SMTP backend with AUTH LOGIN to the same server,

in two patterns:

- **batches**: ``send_messages()`` of ``--batch`` messages on one connection;
- **one message per connection**: Django's ``send_mail()`` per message, which builds a
  new backend (``get_connection()``) and so opens a new connection, and a new TLS
  context, every time: the common pattern of application code.

Both trust the same realistic CA bundle: certifi's bundle plus the fake's test CA
(a production-sized store: 100 to 150 certificates, depending on certifi's version).
Ours reads it from MAILADMIN_CA_BUNDLE. The stock backend has no setting for it: its
``ssl.create_default_context()`` loads OpenSSL's default paths, so SSL_CERT_FILE names
the same PEM and SSL_CERT_DIR an empty folder (no extra certificates from the
machine's store). Work alternates between the backends in chunks of ``--batch``
messages, so that a drift of the machine's speed affects both alike. Before the timed
work each backend sends one untimed chunk: ours fetches its one token there (once per
token lifetime, an hour in Entra ID: a cost of the hour, not of these seconds), and its
time is printed apart.

Prints messages per second for both backends and their ratio per pattern (targets:
>= 1.0 for one message per connection, >= 0.95 for batches) and how many token
requests reached the identity fake (target: 1, one per token lifetime).

Run: .venv/bin/python bench/backend_throughput.py [--messages 500] [--batch 50] [--singles 200]
Exits 1 if a message was not delivered.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import RECIPIENT, RELAY_USER, FakesProcess, setup_django, write_realistic_ca_bundle

TARGETS = {"batches": 0.95, "one message per connection": 1.0}
STOCK_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
BODY = "Body.\n" * 20

Sender = Callable[[list[int]], int]


def _alternate(fakes: FakesProcess, senders: dict[str, Sender], count: int, chunk: int) -> dict[str, dict[str, Any]]:
    """Send ``count`` messages with each sender, alternating chunks; seconds, sent and connections."""
    results = {name: {"seconds": 0.0, "sent": 0, "connections": 0} for name in senders}
    for start in range(0, count, chunk):
        numbers = list(range(start, min(start + chunk, count)))
        for name, send in senders.items():
            before = fakes.report()["connections"]
            started = time.perf_counter()
            results[name]["sent"] += send(numbers)
            results[name]["seconds"] += time.perf_counter() - started
            results[name]["connections"] += fakes.report()["connections"] - before
    return results


def _warm_up(senders: dict[str, Sender], chunk: int) -> float:
    """One untimed chunk with each sender (numbered from -chunk); seconds of ours (cold token cache)."""
    started = time.perf_counter()
    senders["ours"](list(range(-chunk, 0)))
    cold = time.perf_counter() - started
    senders["stock"](list(range(-chunk, 0)))
    return cold


def _batch_senders(info: dict[str, Any]) -> dict[str, Sender]:
    """One backend each, ``send_messages()`` of a whole chunk on one connection."""
    from django.core.mail import EmailMessage, get_connection

    from settings_app.backends import OutgoingEmailBackend

    ours = OutgoingEmailBackend()
    stock = get_connection(STOCK_BACKEND, **_stock_options(info))

    def messages(numbers: list[int], from_email: str | None) -> list[EmailMessage]:
        return [EmailMessage(f"Message {n}", BODY, from_email, [RECIPIENT]) for n in numbers]

    return {
        "ours": lambda numbers: ours.send_messages(messages(numbers, None)),
        "stock": lambda numbers: stock.send_messages(messages(numbers, RELAY_USER)),
    }


def _single_senders(info: dict[str, Any]) -> dict[str, Sender]:
    """``send_mail()`` per message: a new backend, so a new connection, each time."""
    from django.core.mail import get_connection, send_mail

    def ours(numbers: list[int]) -> int:
        # No connection given: send_mail() builds settings.EMAIL_BACKEND, OutgoingEmailBackend.
        return sum(send_mail(f"Message {n}", BODY, None, [RECIPIENT]) for n in numbers)

    def stock(numbers: list[int]) -> int:
        # What send_mail() does with EMAIL_BACKEND set to the stock backend and EMAIL_HOST_* set.
        o = _stock_options(info)  # keyword arguments of the stock backend
        return sum(
            send_mail(f"Message {n}", BODY, RELAY_USER, [RECIPIENT], connection=get_connection(STOCK_BACKEND, **o))
            for n in numbers
        )

    return {"ours": ours, "stock": stock}


def _stock_options(info: dict[str, Any]) -> dict[str, Any]:
    return {
        "host": info["smtp_host"],
        "port": info["smtp_port"],
        "username": RELAY_USER,
        "password": info["relay_password"],
        "use_tls": True,
        "timeout": 30,
    }


def _print_pattern(pattern: str, per_connection: str, results: dict[str, dict[str, Any]]) -> None:
    rates = {name: r["sent"] / r["seconds"] for name, r in results.items()}
    labels = {"ours": "OutgoingEmailBackend (Microsoft 365, XOAUTH2)", "stock": "Django SMTP backend (AUTH LOGIN)"}
    print(f"{pattern} ({per_connection}):")
    for name, r in results.items():
        print(
            f"  {labels[name]:<46} {r['sent']} sent in {r['seconds']:.2f} s, "
            f"{rates[name]:.1f} msg/s, {r['connections']} connections"
        )
    print(f"  ratio: {rates['ours'] / rates['stock']:.2f} (target >= {TARGETS[pattern]})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=500, help="Messages per backend in batches (default 500).")
    parser.add_argument("--batch", type=int, default=50, help="Messages per batch connection (default 50).")
    parser.add_argument(
        "--singles", type=int, default=200, help="Messages per backend, one per connection (default 200)."
    )
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mailadmin-bench-") as name, FakesProcess(Path(name)) as fakes:
        folder = Path(name)
        bundle = write_realistic_ca_bundle(fakes.info["ca_bundle"], folder / "realistic-ca.pem")
        (folder / "no-certificates").mkdir()
        os.environ.update({"SSL_CERT_FILE": str(bundle), "SSL_CERT_DIR": str(folder / "no-certificates")})
        setup_django(folder, fakes.info, bundle)
        print(f"trust: {bundle.read_text().count('BEGIN CERTIFICATE')} certificates (certifi + fake CA) for both")
        senders = _batch_senders(fakes.info)
        cold = _warm_up(senders, options.batch)
        print(f"warm-up, untimed: our first batch of {options.batch} (token request too): {cold * 1000:.0f} ms")
        batches = _alternate(fakes, senders, options.messages, options.batch)
        _print_pattern("batches", f"{options.batch} messages per connection", batches)
        singles = _alternate(fakes, _single_senders(fakes.info), options.singles, options.batch)
        _print_pattern("one message per connection", "send_mail() per message", singles)
        final = fakes.report()
    print(f"token requests: {final['token_requests']} (target 1, one per token lifetime)")
    expected = 2 * (options.batch + options.messages + options.singles)
    if final["delivered"] != expected or final["refused"]:
        print(f"delivered {final['delivered']} of {expected}; {final['refused']} refused", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
