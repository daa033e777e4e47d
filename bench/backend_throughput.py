"""Throughput of OutgoingEmailBackend against Django's stock SMTP backend, on loopback fakes.

Starts the fakes from tests/fakes (FakeIdentity for Entra ID, FakeExchange for
Exchange Online SMTP with STARTTLS) in a child process, so that they do not
compete with the backends for this process's GIL, plus a throw-away instance
folder and database. It then sends the same number of messages through

- OutgoingEmailBackend in Microsoft 365 mode (XOAUTH2, token from the shared cache), and
- Django's stock SMTP backend with AUTH LOGIN to the same server,

in alternating batches (one connection per batch), and prints messages per second
for both, their ratio and how many token requests reached the identity fake.
Targets: ratio >= 0.9, exactly 1 token request.

Run: .venv/bin/python bench/backend_throughput.py [--messages 500] [--batch 50]
Exits 1 if a message was not delivered.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
from multiprocessing.connection import Connection
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

MAILBOX = "svc@contoso.com"
RELAY_USER = "relay@contoso.com"
RECIPIENT = "someone@example.net"
RATIO_TARGET = 0.9


def serve_fakes(channel: Connection, folder: str) -> None:
    """Child process: run the fakes, describe them, then answer "report" until "stop"."""
    from tests.fakes import tls
    from tests.fakes.fixtures import make_client_secret
    from tests.fakes.identity import FakeIdentity
    from tests.fakes.smtp import FakeExchange

    logging.getLogger("mail.log").setLevel(logging.WARNING)
    with FakeIdentity() as identity, FakeExchange(identity=identity) as exchange:
        tenant_id, client_id, secret = str(uuid.uuid4()), str(uuid.uuid4()), make_client_secret()
        identity.add_tenant(tenant_id, ("contoso.onmicrosoft.com", "contoso.com"))
        exchange.setup_mailbox(identity.register_app(tenant_id, client_id, secret), MAILBOX)
        relay_password = make_client_secret()
        exchange.add_user(RELAY_USER, relay_password)
        channel.send(
            {
                "ca_bundle": str(tls.write_ca_bundle(Path(folder) / "ca.pem")),
                "authority_host": identity.authority_host,
                "smtp_host": exchange.hostname,
                "smtp_port": exchange.port,
                "tenant_id": tenant_id,
                "client_id": client_id,
                "client_secret": secret,
                "relay_password": relay_password,
            }
        )
        while channel.recv() == "report":
            channel.send(
                {
                    "token_requests": len(identity.token_requests),
                    "connections": exchange.connections,
                    "delivered": len(exchange.messages),
                    "refused": len(exchange.rejected_messages),
                }
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=500, help="Messages per backend (default 500).")
    parser.add_argument("--batch", type=int, default=50, help="Messages per connection (default 50).")
    options = parser.parse_args()

    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="mailadmin-bench-") as folder:
        channel, child_end = context.Pipe()
        fakes = context.Process(target=serve_fakes, args=(child_end, folder), daemon=True)
        fakes.start()
        try:
            return _run(Path(folder), channel, options.messages, options.batch)
        finally:
            channel.send("stop")
            fakes.join(timeout=10)


def _report(channel: Connection) -> dict:
    channel.send("report")
    return channel.recv()


def _run(folder: Path, channel: Connection, count: int, batch: int) -> int:
    fakes = channel.recv()
    for name in ("MAILADMIN_CACHE_URL", "DATABASE_URL"):
        os.environ.pop(name, None)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "mailadmin.settings",
            "MAILADMIN_INSTANCE_DIR": str(folder / "instance"),
            "MAILADMIN_SQLITE_PATH": str(folder / "db.sqlite3"),
            "MAILADMIN_AUTHORITY_HOST": fakes["authority_host"],
            "MAILADMIN_CA_BUNDLE": fakes["ca_bundle"],
            # The stock backend trusts the platform store only; OpenSSL reads this variable.
            "SSL_CERT_FILE": fakes["ca_bundle"],
        }
    )
    import django

    django.setup()
    from django.core.mail import EmailMessage
    from django.core.mail.backends.smtp import EmailBackend
    from django.core.management import call_command

    from settings_app.backends import OutgoingEmailBackend
    from settings_app.models import OutgoingEmailSettings

    call_command("migrate", verbosity=0)
    saved = OutgoingEmailSettings.load()
    saved.protocol = "smtp_microsoft365"
    saved.server, saved.port, saved.connection_security = fakes["smtp_host"], fakes["smtp_port"], "starttls"
    saved.username = saved.sender_email = MAILBOX
    saved.client_id, saved.tenant_id = fakes["client_id"], fakes["tenant_id"]
    saved.client_secret = fakes["client_secret"]
    saved.save()

    def batches(from_email: str | None) -> list[list[EmailMessage]]:
        messages = [EmailMessage(f"Message {n}", "Body.\n" * 20, from_email, [RECIPIENT]) for n in range(count)]
        return [messages[start : start + batch] for start in range(0, count, batch)]

    backends = {
        "ours": OutgoingEmailBackend(),
        "stock": EmailBackend(
            host=fakes["smtp_host"],
            port=fakes["smtp_port"],
            username=RELAY_USER,
            password=fakes["relay_password"],
            use_tls=True,
            timeout=30,
        ),
    }
    seconds = {"ours": 0.0, "stock": 0.0}
    sent = {"ours": 0, "stock": 0}
    connections = {"ours": 0, "stock": 0}
    # Batches alternate between the backends so that any drift of the machine's speed
    # affects both alike; the first batch is ours, with a cold token cache.
    for pair in zip(batches(None), batches(RELAY_USER), strict=True):
        for name, work in zip(("ours", "stock"), pair, strict=True):
            before = _report(channel)["connections"]
            started = time.perf_counter()
            sent[name] += backends[name].send_messages(work)
            seconds[name] += time.perf_counter() - started
            connections[name] += _report(channel)["connections"] - before

    final = _report(channel)
    rates = {name: sent[name] / seconds[name] for name in backends}
    print(f"messages per backend: {count}, {batch} per connection")
    print(
        f"OutgoingEmailBackend (Microsoft 365, XOAUTH2): {sent['ours']} sent in {seconds['ours']:.2f} s, "
        f"{rates['ours']:.1f} msg/s, {connections['ours']} connections"
    )
    print(
        f"Django SMTP backend (AUTH LOGIN):              {sent['stock']} sent in {seconds['stock']:.2f} s, "
        f"{rates['stock']:.1f} msg/s, {connections['stock']} connections"
    )
    print(f"ratio: {rates['ours'] / rates['stock']:.2f} (target >= {RATIO_TARGET})")
    print(f"token requests: {final['token_requests']} (target 1)")
    if final["delivered"] != 2 * count or final["refused"]:
        print(f"delivered {final['delivered']} of {2 * count}; {final['refused']} refused", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
