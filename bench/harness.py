"""What the benchmarks share: the loopback fakes in a child process and a throw-away Django instance.

Contracts:
- ``FakesProcess(folder)`` starts FakeIdentity (Entra ID) and FakeExchange (Exchange
  Online SMTP, STARTTLS) from tests/fakes in a spawned child, so that they do not
  compete with the code under measurement for this process's GIL. Both listen on
  127.0.0.1 only. ``info`` describes them (hosts, ports, tenant, app, secrets, the
  fake CA's PEM); ``report()`` returns their counters; ``simulate_round_trip(s)``
  delays every reply of both fakes by ``s`` seconds. The child stops at the end of
  the ``with`` block, or by itself when this process goes away (its pipe closes).
- ``write_realistic_ca_bundle(fake_ca, target)``: certifi's bundle plus the fake CA,
  the size of a production trust store (100 to 150 certificates, by certifi's version).
- ``setup_django(folder, info, ca_bundle)`` points a fresh instance folder and SQLite
  database at the fakes, runs the migrations and saves Microsoft 365 settings for
  the fake tenant. Call it once per process, before importing anything of Django's.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import uuid
import warnings
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Self

PROJECT = Path(__file__).resolve().parent.parent
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))

MAILBOX = "svc@contoso.com"
RELAY_USER = "relay@contoso.com"
RECIPIENT = "someone@example.net"
# With either set, requests ignores a Session's ``verify`` (msal's ``verify=``).
REQUESTS_CA_ENV = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def serve_fakes(channel: Connection, folder: str) -> None:
    """Child process: run the fakes, describe them, then answer requests until "stop"."""
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
                "ca_bundle": str(tls.write_ca_bundle(Path(folder) / "fake-ca.pem")),
                "authority_host": identity.authority_host,
                "smtp_host": exchange.hostname,
                "smtp_port": exchange.port,
                "tenant_id": tenant_id,
                "client_id": client_id,
                "client_secret": str(secret),
                "relay_password": str(relay_password),
            }
        )
        while True:
            try:
                request, argument = channel.recv()
            except EOFError:
                return
            if request == "stop":
                return
            if request == "round_trip":
                identity.simulate_round_trip(argument)
                exchange.simulate_round_trip(argument)
            channel.send(
                {
                    "token_requests": len(identity.token_requests),
                    "identity_requests": len(identity.requests),
                    "connections": exchange.connections,
                    "delivered": len(exchange.messages),
                    "refused": len(exchange.rejected_messages),
                    "auth_ok": sum(1 for a in exchange.auth_attempts if a.success),
                }
            )


class FakesProcess:
    """The fakes in a child process, for the duration of a ``with`` block."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self.info: dict[str, Any] = {}

    def __enter__(self) -> Self:
        context = multiprocessing.get_context("spawn")
        self._channel, child_end = context.Pipe()
        self._process = context.Process(target=serve_fakes, args=(child_end, str(self._folder)), daemon=True)
        self._process.start()
        child_end.close()
        self.info = self._channel.recv()
        return self

    def __exit__(self, *exc: object) -> None:
        self._channel.send(("stop", None))
        self._process.join(timeout=10)

    def report(self) -> dict[str, int]:
        """The fakes' counters: token requests, SMTP connections, messages delivered..."""
        self._channel.send(("report", None))
        return self._channel.recv()

    def simulate_round_trip(self, seconds: float) -> None:
        """Delay every reply of both fakes by ``seconds`` (0: none)."""
        self._channel.send(("round_trip", seconds))
        self._channel.recv()


def write_realistic_ca_bundle(fake_ca: str | Path, target: Path) -> Path:
    """certifi's bundle followed by the fake CA: as many certificates as a real trust store."""
    import certifi

    target.write_text(Path(certifi.where()).read_text() + "\n" + Path(fake_ca).read_text())
    return target


def setup_django(folder: Path, info: dict[str, Any], ca_bundle: str | Path) -> None:
    """Configure Django for a throw-away instance on the fakes and save M365 settings."""
    for name in ("MAILADMIN_CACHE_URL", "DATABASE_URL", *REQUESTS_CA_ENV):
        os.environ.pop(name, None)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "mailadmin.settings",
            "MAILADMIN_INSTANCE_DIR": str(folder / "instance"),
            "MAILADMIN_SQLITE_PATH": str(folder / "db.sqlite3"),
            "MAILADMIN_AUTHORITY_HOST": info["authority_host"],
            "MAILADMIN_CA_BUNDLE": str(ca_bundle),
            # A benchmark presses "Save and test" far more often than the page allows people to.
            "MAILADMIN_TEST_RATE_LIMIT": "1000000",
        }
    )
    # No collectstatic in a throw-away instance: WhiteNoise serves from the finders (as in the tests).
    warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)
    import django

    django.setup()
    from django.core.management import call_command

    from settings_app.models import OutgoingEmailSettings

    call_command("migrate", verbosity=0)
    saved = OutgoingEmailSettings.load()
    saved.protocol = "smtp_microsoft365"
    saved.cloud = "global"
    saved.server, saved.port, saved.connection_security = info["smtp_host"], info["smtp_port"], "starttls"
    saved.use_secure_auth = True
    saved.username = saved.sender_email = MAILBOX
    saved.client_id, saved.tenant_id = info["client_id"], info["tenant_id"]
    saved.client_secret = info["client_secret"]
    saved.save()

