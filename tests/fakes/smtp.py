"""aiosmtpd-based fake of Exchange Online SMTP submission (smtp.office365.com:587).

Contract (shared/reference/microsoft-protocol-notes.md, section 3):

- Banner, EHLO lists before/after STARTTLS, and reply texts as Exchange sends them.
- AUTH only after STARTTLS *and* a fresh EHLO (else ``503 5.5.2 Send hello first``).
- ``AUTH XOAUTH2`` with or without an initial response; the bearer token is
  checked with the linked ``FakeIdentity`` and against the Exchange-side setup
  (service principal, FullAccess, SMTP AUTH switch); every token/authorisation
  fault gives ``535 5.7.3``.
- ``AUTH LOGIN`` (advertised) and ``AUTH PLAIN`` (accepted, not advertised)
  against ``add_user`` credentials.
- SendAs is checked only after the final ``.`` of DATA (``554 5.2.252``).
- Faults last until ``reset()``; ``times=`` limits an override to N uses;
  ``delay_reply_to(verb, seconds)`` makes one verb's reply slow.
- Records never hold tokens or passwords.
- Accepted sockets get ``TCP_NODELAY``; the lines of a multi-line reply leave
  together, after the simulated round trip (``simulate_round_trip``, see
  ``tests.fakes.loopback``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import email
import email.message
import email.policy
import functools
import secrets
import socket
import ssl
import threading
import traceback
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, getaddresses
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, TLSSetupException

from tests.fakes import tls
from tests.fakes.identity import (
    EXCHANGE_APP_ID,
    SMTP_SEND_AS_APP,
    FakeIdentity,
    InvalidToken,
    RegisteredApp,
)
from tests.fakes.loopback import LoopbackServer

MAX_SIZE = 157286400
LOGIN_USERNAME_CHALLENGE = "334 VXNlcm5hbWU6"
LOGIN_PASSWORD_CHALLENGE = "334 UGFzc3dvcmQ6"
SPECIAL_VERBS = frozenset({"MESSAGE"})


@dataclass(frozen=True)
class AuthAttempt:
    """One AUTH exchange. ``reason`` says why it failed (``"ok"`` on success)."""

    mechanism: str
    mailbox: str | None
    reply: str
    success: bool
    reason: str
    app_id: str | None = None
    tenant_id: str | None = None


@dataclass(frozen=True)
class ReceivedMessage:
    """A message whose DATA completed; ``accepted`` is False when it was refused."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    authenticated_as: str | None
    accepted: bool
    reply: str
    mail_options: tuple[str, ...] = ()
    raw: bytes = field(default=b"", repr=False)
    message: email.message.EmailMessage = field(default_factory=email.message.EmailMessage, repr=False, compare=False)

    @property
    def subject(self) -> str | None:
        value = self.message["Subject"]
        return None if value is None else str(value)


@dataclass
class _Override:
    reply: str
    times: int | None


@dataclass(frozen=True)
class _ServicePrincipal:
    app_id: str
    object_id: str
    tenant_id: str | None


def parse_xoauth2(raw: bytes) -> tuple[str, str] | None:
    """Split a decoded XOAUTH2 string into (mailbox, token); None when malformed."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text.endswith("\x01\x01"):
        return None
    values: dict[str, str] = {}
    for part in text.split("\x01"):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep:
            return None
        values[key.strip().lower()] = value
    user = values.get("user", "").strip()
    scheme, _, token = values.get("auth", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip() or not _is_address(user):
        return None
    return user, token.strip()


def _is_address(value: str) -> bool:
    local, at, domain = value.rpartition("@")
    return bool(at and local and "." in domain and " " not in value and "\x01" not in value)


def _b64decode(text: str | bytes) -> bytes | None:
    data = text.encode("ascii", "replace") if isinstance(text, str) else text
    try:
        return base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


class _Hooks:
    """aiosmtpd event handler: only turns unexpected exceptions into a 451."""

    def __init__(self, fake: FakeExchange) -> None:
        self._fake = fake

    async def handle_exception(self, error: Exception) -> str:
        if not isinstance(error, (TLSSetupException, ssl.SSLError, ConnectionError)):
            self._fake._note_error("".join(traceback.format_exception(error)))
        return "451 4.3.0 Temporary server error. Please try again later"


class _Dispatch(dict):  # type: ignore[type-arg]
    """Stands in for aiosmtpd's verb table so every command goes through ``_dispatch``."""

    def __init__(self, session: _ExchangeSession) -> None:
        super().__init__()
        self._session = session

    def get(self, verb: str, default: Any = None) -> Callable[[str | None], Awaitable[None]]:
        return functools.partial(self._session._dispatch, verb)


class _ExchangeSession(SMTP):
    """One client connection (aiosmtpd creates one protocol object per connection)."""

    line_length_limit = 16384
    command_size_limit = 16384

    def __init__(
        self,
        fake: FakeExchange,
        *,
        tls_context: ssl.SSLContext | None,
        implicit_tls: bool,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._fake = fake
        self._implicit_tls = implicit_tls
        self._auth_mailbox: str | None = None
        self._pending_lines: list[bytes] = []
        stamp = format_datetime(datetime.now(UTC))
        super().__init__(
            _Hooks(fake),
            hostname=fake.banner_host,
            ident=f"Microsoft ESMTP MAIL Service ready at {stamp} [{secrets.token_hex(8).upper()}]",
            tls_context=None if implicit_tls else tls_context,
            enable_SMTPUTF8=True,
            data_size_limit=None,
            loop=loop,
        )
        self.command_size_limits = collections.defaultdict(lambda: 16384)
        self._verbs: dict[str, Callable[[str | None], Awaitable[None]]] = {
            "EHLO": self.smtp_EHLO,
            "HELO": self.smtp_HELO,
            "STARTTLS": self.smtp_STARTTLS,
            "AUTH": self.smtp_AUTH,
            "MAIL": self.smtp_MAIL,
            "RCPT": self.smtp_RCPT,
            "DATA": self.smtp_DATA,
            "RSET": self.smtp_RSET,
            "NOOP": self.smtp_NOOP,
            "QUIT": self.smtp_QUIT,
        }
        self._smtp_methods = _Dispatch(self)

    # plumbing

    def _is_tls(self) -> bool:
        return self._implicit_tls or self._tls_protocol is not None

    def _hang_up(self) -> None:
        if self._handler_coroutine is not None:
            self._handler_coroutine.cancel()
        if self.transport is not None:
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is None:
            # The first call is the TCP connection; STARTTLS calls again with the TLS layer.
            # asyncio sets TCP_NODELAY itself only on sockets made with proto=IPPROTO_TCP,
            # and _Controller's listener is socket(AF_INET, SOCK_STREAM): proto 0.
            self._fake._accepted(transport.get_extra_info("socket"))
        super().connection_made(transport)

    async def push(self, status: str | bytes) -> None:
        """Queue continuation lines (``250-``); write the reply once its last line is pushed."""
        if status == "220 Ready to start TLS":
            status = "220 2.0.0 SMTP server ready"
        line = status.encode("utf-8") if isinstance(status, str) else status
        self._pending_lines.append(line)
        if line[3:4] == b"-":
            return
        reply, self._pending_lines = b"\r\n".join(self._pending_lines), []
        delay = self._fake._reply_delay()
        if delay:
            await asyncio.sleep(delay)
        await super().push(reply)

    async def _reply_and_maybe_close(self, reply: str) -> None:
        await self.push(reply)
        if reply.startswith("421"):
            self._hang_up()

    async def _dispatch(self, verb: str, arg: str | None) -> None:
        fake = self._fake
        fake._record_command(verb)
        if fake._drops(verb):
            self._hang_up()
            return
        delay = fake._extra_delay(verb)
        if delay:
            await asyncio.sleep(delay)
            if self.transport is None or self.transport.is_closing():
                return  # the client left meanwhile (it need not wait for a 221): nothing to answer
        if verb != "AUTH":
            override = fake._take_override(verb)
            if override is not None:
                await self._reply_and_maybe_close(override)
                return
        handler = self._verbs.get(verb)
        if handler is None:
            await self.push(f"500 5.3.3 Unrecognized command '{verb}' [{fake.short_host}]")
            return
        await handler(arg)

    async def _read_line(self) -> bytes:
        return (await self._reader.readline()).rstrip(b"\r\n")

    def _peer_ip(self) -> str:
        peer = self.session.peer if self.session is not None else None
        return str(peer[0]) if isinstance(peer, tuple) and peer else "127.0.0.1"

    # greeting and TLS

    async def smtp_EHLO(self, arg: str | None) -> None:
        fake = self._fake
        if not arg:
            await self.push(f"501 5.5.4 Invalid domain name [{fake.short_host}]")
            return
        self._set_rset_state()
        assert self.session is not None
        self.session.host_name = arg
        self.session.extended_smtp = True
        lines = [
            f"{fake.banner_host} Hello [{self._peer_ip()}]",
            f"SIZE {MAX_SIZE}",
            "PIPELINING",
            "DSN",
            "ENHANCEDSTATUSCODES",
        ]
        if self._is_tls():
            lines.append("AUTH LOGIN" if fake._flag("no_xoauth2") else "AUTH LOGIN XOAUTH2")
        elif not fake._flag("no_starttls"):
            lines.append("STARTTLS")
        lines += ["8BITMIME", "BINARYMIME", "CHUNKING", "SMTPUTF8"]
        for line in lines[:-1]:
            await self.push(f"250-{line}")
        await self.push(f"250 {lines[-1]}")

    async def smtp_HELO(self, arg: str | None) -> None:
        if not arg:
            await self.push(f"501 5.5.4 Invalid domain name [{self._fake.short_host}]")
            return
        self._set_rset_state()
        assert self.session is not None
        self.session.host_name = arg
        self.session.extended_smtp = False
        await self.push(f"250 {self._fake.banner_host} Hello [{self._peer_ip()}]")

    async def smtp_STARTTLS(self, arg: str | None) -> None:
        fake = self._fake
        if self._is_tls():
            await self.push(f"503 5.5.2 TLS already active [{fake.short_host}]")
            return
        if fake._flag("no_starttls") or self.tls_context is None:
            await self.push("454 4.7.0 TLS not available due to local problem")
            return
        await super().smtp_STARTTLS(arg or "")

    # authentication

    async def smtp_AUTH(self, arg: str | None) -> None:
        fake = self._fake
        assert self.session is not None
        parts = (arg or "").split()
        mechanism = parts[0].upper() if parts else ""
        initial = parts[1] if len(parts) > 1 else None
        override = fake._take_override("AUTH")
        if override is not None:
            mailbox = None
            if mechanism == "XOAUTH2" and initial:
                parsed = parse_xoauth2(_b64decode(initial) or b"")
                mailbox = parsed[0] if parsed else None
            success = override.startswith("235")
            if success:
                self.session.authenticated = True
                self._auth_mailbox = mailbox
            fake._record_auth(AuthAttempt(mechanism, mailbox, override, success, "override"))
            await self._reply_and_maybe_close(override)
            return
        if not self._is_tls() or not self.session.host_name or not self.session.extended_smtp:
            await self.push(f"503 5.5.2 Send hello first [{fake.short_host}]")
            return
        if self.session.authenticated:
            await self.push(f"503 5.5.2 Already authenticated [{fake.short_host}]")
            return
        if mechanism == "XOAUTH2" and not fake._flag("no_xoauth2"):
            await self._auth_xoauth2(initial)
        elif mechanism == "LOGIN":
            await self._auth_login(initial)
        elif mechanism == "PLAIN":
            await self._auth_plain(initial)
        else:
            await self.push(f"504 5.7.4 Unrecognized authentication type [{fake.short_host}]")

    async def _finish_auth(self, attempt: AuthAttempt) -> None:
        assert self.session is not None
        if attempt.success:
            self.session.authenticated = True
            self._auth_mailbox = attempt.mailbox
        self._fake._record_auth(attempt)
        await self.push(attempt.reply)

    async def _auth_xoauth2(self, initial: str | None) -> None:
        fake = self._fake
        if initial is None:
            await self.push("334 ")
            blob = await self._read_line()
        else:
            blob = initial.encode("ascii", "replace")
        decoded = _b64decode(blob) if blob not in (b"", b"=") else b""
        parsed = parse_xoauth2(decoded) if decoded is not None else None
        if parsed is None:
            reply = f"501 5.5.124 Invalid XOAUTH2 auth data - User address provided is not valid {fake.tail()}"
            await self._finish_auth(AuthAttempt("XOAUTH2", None, reply, False, "malformed"))
            return
        mailbox, token = parsed
        await self._finish_auth(fake._check_xoauth2(mailbox, token))

    async def _auth_login(self, initial: str | None) -> None:
        if initial is None:
            await self.push(LOGIN_USERNAME_CHALLENGE)
            user_blob: bytes | str = await self._read_line()
        else:
            user_blob = initial
        await self.push(LOGIN_PASSWORD_CHALLENGE)
        pass_blob = await self._read_line()
        username = _b64decode(user_blob)
        password = _b64decode(pass_blob)
        await self._finish_auth(self._fake._check_password("LOGIN", username, password))

    async def _auth_plain(self, initial: str | None) -> None:
        if initial is None:
            await self.push("334 ")
            blob: bytes | str = await self._read_line()
        else:
            blob = initial
        decoded = _b64decode(blob)
        username = password = None
        if decoded is not None and decoded.count(b"\x00") == 2:
            _, username, password = decoded.split(b"\x00")
        await self._finish_auth(self._fake._check_password("PLAIN", username, password))

    # mail transaction

    async def _ready_for_mail(self) -> bool:
        fake = self._fake
        assert self.session is not None
        if not self.session.host_name:
            await self.push(f"503 5.5.2 Send hello first [{fake.short_host}]")
            return False
        if not self.session.authenticated:
            await self.push(f"530 5.7.57 Client not authenticated to send mail. {fake.tail()}")
            return False
        return True

    async def smtp_MAIL(self, arg: str | None) -> None:
        fake = self._fake
        if not await self._ready_for_mail():
            return
        assert self.envelope is not None
        rest = self._strip_command_keyword("FROM:", arg or "")
        if rest is None:
            await self.push(f"501 5.5.4 Invalid arguments {fake.tail()}")
            return
        address, params = self._getaddr(rest)
        if address is None:
            await self.push(f"501 5.1.7 Invalid address {fake.tail()}")
            return
        if self.envelope.mail_from is not None:
            await self.push(f"503 5.5.2 Sender already specified {fake.tail()}")
            return
        options = (params or "").split()
        for option in options:
            name, _, value = option.partition("=")
            if name.upper() == "SIZE" and value.isdigit() and int(value) > MAX_SIZE:
                await self.push("552 5.3.4 Message size exceeds fixed maximum message size")
                return
        self.envelope.mail_from = address
        self.envelope.mail_options.extend(options)
        await self.push("250 2.1.0 Sender OK")

    async def _has_sender(self) -> bool:
        """False (after answering 503) when no MAIL FROM was given in this transaction."""
        assert self.envelope is not None
        if self.envelope.mail_from is None:
            await self.push(f"503 5.5.2 Need mail command {self._fake.tail()}")
            return False
        return True

    async def smtp_RCPT(self, arg: str | None) -> None:
        fake = self._fake
        if not await self._ready_for_mail():
            return
        assert self.envelope is not None
        if not await self._has_sender():
            return
        rest = self._strip_command_keyword("TO:", arg or "")
        address, params = self._getaddr(rest) if rest is not None else (None, None)
        if not address:
            await self.push(f"501 5.1.3 Invalid address {fake.tail()}")
            return
        self.envelope.rcpt_tos.append(address)
        self.envelope.rcpt_options.extend((params or "").split())
        await self.push("250 2.1.5 Recipient OK")

    async def smtp_DATA(self, arg: str | None) -> None:
        fake = self._fake
        if not await self._ready_for_mail():
            return
        assert self.envelope is not None
        if not await self._has_sender():
            return
        if not self.envelope.rcpt_tos:
            await self.push(f"503 5.5.2 Need rcpt command {fake.tail()}")
            return
        await self.push("354 Start mail input; end with <CRLF>.<CRLF>")
        lines: list[bytes] = []
        while True:
            try:
                line = await self._reader.readuntil(b"\r\n")
            except asyncio.LimitOverrunError as exc:
                lines.append(await self._reader.read(exc.consumed))
                continue
            if line == b".\r\n":
                break
            lines.append(line[1:] if line.startswith(b".") else line)
        raw = b"".join(lines)
        envelope = self.envelope
        self._set_post_data_state()
        fake._record_command("MESSAGE")
        if fake._drops("MESSAGE"):
            self._hang_up()
            return
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, email.message.EmailMessage)
        override = fake._take_override("MESSAGE")
        reply = override or fake._judge_message(self._auth_mailbox, envelope.mail_from, message)
        fake._record_message(
            ReceivedMessage(
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                authenticated_as=self._auth_mailbox,
                accepted=reply.startswith("250"),
                reply=reply,
                mail_options=tuple(envelope.mail_options),
                raw=raw,
                message=message,
            )
        )
        await self._reply_and_maybe_close(reply)

    async def smtp_RSET(self, arg: str | None) -> None:
        self._set_rset_state()
        await self.push("250 2.0.0 Resetting")

    async def smtp_NOOP(self, arg: str | None) -> None:
        await self.push("250 2.0.0 OK")

    async def smtp_QUIT(self, arg: str | None) -> None:
        await self.push("221 2.0.0 Service closing transmission channel")
        self._hang_up()


class _Controller(Controller):
    """aiosmtpd Controller bound to 127.0.0.1 on an ephemeral port."""

    def __init__(self, fake: FakeExchange, tls_context: ssl.SSLContext, implicit_tls: bool):
        super().__init__(
            _Hooks(fake),
            hostname="127.0.0.1",
            port=0,
            ssl_context=tls_context if implicit_tls else None,
            ready_timeout=5.0,
        )
        self._fake = fake
        self._tls_context = tls_context
        self._implicit_tls = implicit_tls

    def _create_server(self) -> Any:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        return self.loop.create_server(self._factory_invoker, sock=sock, ssl=self.ssl_context)

    def factory(self) -> SMTP:
        self._fake._count_connection()
        return _ExchangeSession(
            self._fake,
            tls_context=self._tls_context,
            implicit_tls=self._implicit_tls,
            loop=self.loop,
        )


class FakeExchange(LoopbackServer):
    """Fake Exchange Online SMTP submission server on ``127.0.0.1:<port>``.

    ``identity`` validates XOAUTH2 tokens. Setup (service principals, mailbox
    rights, SMTP AUTH switches, users) survives ``reset()``; faults, records and
    a simulated round trip do not. ``reset(everything=True)`` clears setup too.
    """

    def __init__(
        self,
        identity: FakeIdentity | None = None,
        *,
        server_cert: trustme.LeafCert | None = None,
        implicit_tls: bool = False,
        server_name: str = "BN9PR03CA0042",
        mailbox_server: str = "BN9PR03MB6001",
        region: str = "NAMPRD03",
        enforce_send_as: bool = True,
        round_trip: float = 0.0,
    ) -> None:
        super().__init__(round_trip=round_trip)
        self.identity = identity
        self.implicit_tls = implicit_tls
        self.enforce_send_as = enforce_send_as
        self.server_name = server_name
        self.region = region
        self.mailbox_server = mailbox_server
        self._tls_context = tls.server_ssl_context(server_cert)
        self._lock = threading.RLock()
        self._controller: _Controller | None = None
        self._sps: dict[str, _ServicePrincipal] = {}
        self._mailbox_access: set[tuple[str, str]] = set()
        self._send_as: set[tuple[str, str]] = set()
        self._tenant_smtp_auth_disabled = False
        self._mailboxes_smtp_auth_disabled: set[str] = set()
        self._users: dict[str, str] = {}
        self._overrides: dict[str, list[_Override]] = {}
        self._flags: set[str] = set()
        self._drop_after: set[str] = set()
        self._delays: dict[str, float] = {}
        self._messages: list[ReceivedMessage] = []
        self._auth_attempts: list[AuthAttempt] = []
        self._commands: list[str] = []
        self._errors: list[str] = []
        self._connections = 0

    # lifecycle

    def start(self) -> FakeExchange:
        """Start the aiosmtpd loop in a daemon thread."""
        if self._controller is None:
            controller = _Controller(self, self._tls_context, self.implicit_tls)
            controller.start()
            self._controller = controller
        return self

    def stop(self) -> None:
        """Stop the loop, drop open sessions and release the port."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    @property
    def hostname(self) -> str:
        return "localhost"

    @property
    def port(self) -> int:
        if self._controller is None:
            raise RuntimeError("FakeExchange is not started")
        return int(self._controller.port)

    @property
    def banner_host(self) -> str:
        return f"{self.server_name}.outlook.office365.com"

    @property
    def short_host(self) -> str:
        return f"{self.server_name}.{self.region}.PROD.OUTLOOK.COM"

    def tail(self) -> str:
        """Diagnostic suffix Exchange appends to 5xx replies."""
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        return f"[{self.server_name}.{self.region.lower()}.prod.outlook.com {stamp} {secrets.token_hex(8).upper()}]"

    # Exchange-side setup

    def register_service_principal(self, app_id: str, object_id: str, *, tenant_id: str | None = None) -> None:
        """``New-ServicePrincipal -AppId app_id -ObjectId object_id``."""
        with self._lock:
            self._sps[app_id.lower()] = _ServicePrincipal(
                app_id.lower(), object_id.lower(), tenant_id.lower() if tenant_id else None
            )

    def remove_service_principal(self, app_id: str) -> None:
        with self._lock:
            self._sps.pop(app_id.lower(), None)

    def grant_mailbox_access(self, app_id: str, mailbox: str) -> None:
        """``Add-MailboxPermission -Identity mailbox -User <SP> -AccessRights FullAccess``."""
        with self._lock:
            self._mailbox_access.add((app_id.lower(), mailbox.lower()))

    def revoke_mailbox_access(self, app_id: str, mailbox: str) -> None:
        with self._lock:
            self._mailbox_access.discard((app_id.lower(), mailbox.lower()))

    def grant_send_as(self, mailbox: str, sender: str) -> None:
        """Let ``mailbox`` send as ``sender`` (``Add-RecipientPermission``)."""
        with self._lock:
            self._send_as.add((mailbox.lower(), sender.lower()))

    def disable_smtp_auth(self, mailbox: str | None = None) -> None:
        """Turn SMTP AUTH off for ``mailbox``, or for the whole tenant when None."""
        with self._lock:
            if mailbox is None:
                self._tenant_smtp_auth_disabled = True
            else:
                self._mailboxes_smtp_auth_disabled.add(mailbox.lower())

    def enable_smtp_auth(self, mailbox: str | None = None) -> None:
        with self._lock:
            if mailbox is None:
                self._tenant_smtp_auth_disabled = False
            else:
                self._mailboxes_smtp_auth_disabled.discard(mailbox.lower())

    def setup_mailbox(self, app: RegisteredApp, mailbox: str) -> None:
        """Register ``app``'s service principal and give it FullAccess to ``mailbox``."""
        self.register_service_principal(app.app_id, app.object_id, tenant_id=app.tenant_id)
        self.grant_mailbox_access(app.app_id, mailbox)

    def add_user(self, username: str, password: str) -> None:
        """Credentials for AUTH LOGIN / AUTH PLAIN."""
        with self._lock:
            self._users[username.lower()] = password

    # faults

    def reply_to(self, verb: str, reply: str, *, times: int | None = None) -> None:
        """Answer ``verb`` with ``reply`` instead of processing it (a 421 also hangs up).

        ``verb`` is an SMTP command or ``"MESSAGE"`` (the reply after DATA's final dot).
        """
        if not (len(reply) >= 3 and reply[:3].isdigit()):
            raise ValueError("reply must start with a 3-digit code")
        with self._lock:
            self._overrides.setdefault(verb.upper(), []).append(_Override(reply, times))

    def reply_to_auth(self, reply: str, *, times: int | None = None) -> None:
        """Answer AUTH with ``reply`` (e.g. ``"535 5.7.3 Authentication unsuccessful"``)."""
        self.reply_to("AUTH", reply, times=times)

    def no_starttls(self) -> None:
        """Do not advertise (or accept) STARTTLS."""
        with self._lock:
            self._flags.add("no_starttls")

    def no_xoauth2(self) -> None:
        """Advertise only ``AUTH LOGIN`` after TLS and refuse XOAUTH2 with 504."""
        with self._lock:
            self._flags.add("no_xoauth2")

    def delay_reply_to(self, verb: str, seconds: float) -> None:
        """Wait ``seconds`` after receiving ``verb`` before answering it (a slow server for that verb)."""
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        with self._lock:
            self._delays[verb.upper()] = seconds

    def _extra_delay(self, verb: str) -> float:
        with self._lock:
            return self._delays.get(verb, 0.0)

    def drop_after(self, verb: str) -> None:
        """Close the connection, without a reply, right after receiving ``verb``."""
        with self._lock:
            self._drop_after.add(verb.upper())

    def _flag(self, name: str) -> bool:
        with self._lock:
            return name in self._flags

    def _drops(self, verb: str) -> bool:
        with self._lock:
            return verb in self._drop_after

    def _take_override(self, verb: str) -> str | None:
        with self._lock:
            queue = self._overrides.get(verb)
            if not queue:
                return None
            override = queue[0]
            if override.times is not None:
                override.times -= 1
                if override.times <= 0:
                    queue.pop(0)
            return override.reply

    # records

    @property
    def messages(self) -> list[ReceivedMessage]:
        """Accepted messages, oldest first."""
        with self._lock:
            return [m for m in self._messages if m.accepted]

    @property
    def rejected_messages(self) -> list[ReceivedMessage]:
        with self._lock:
            return [m for m in self._messages if not m.accepted]

    @property
    def auth_attempts(self) -> list[AuthAttempt]:
        with self._lock:
            return list(self._auth_attempts)

    @property
    def commands(self) -> list[str]:
        """Upper-case verbs received, plus ``"MESSAGE"`` for each completed DATA."""
        with self._lock:
            return list(self._commands)

    @property
    def connections(self) -> int:
        with self._lock:
            return self._connections

    @property
    def server_errors(self) -> list[str]:
        """Tracebacks of bugs inside the fake (should stay empty)."""
        with self._lock:
            return list(self._errors)

    def reset(self, everything: bool = False) -> None:
        """Clear faults and records; setup as well when ``everything``."""
        with self._lock:
            self._overrides.clear()
            self._flags.clear()
            self._drop_after.clear()
            self._delays.clear()
            self._messages.clear()
            self._auth_attempts.clear()
            self._commands.clear()
            self._errors.clear()
            self._connections = 0
            self._reset_network()
            if everything:
                self._sps.clear()
                self._mailbox_access.clear()
                self._send_as.clear()
                self._tenant_smtp_auth_disabled = False
                self._mailboxes_smtp_auth_disabled.clear()
                self._users.clear()

    def _record_command(self, verb: str) -> None:
        with self._lock:
            self._commands.append(verb)

    def _record_auth(self, attempt: AuthAttempt) -> None:
        with self._lock:
            self._auth_attempts.append(attempt)

    def _record_message(self, message: ReceivedMessage) -> None:
        with self._lock:
            self._messages.append(message)

    def _count_connection(self) -> None:
        with self._lock:
            self._connections += 1

    def _note_error(self, text: str) -> None:
        with self._lock:
            self._errors.append(text)

    # decisions

    def _denied(self, mailbox: str | None, reason: str, **ids: str | None) -> AuthAttempt:
        reply = f"535 5.7.3 Authentication unsuccessful {self.tail()}"
        return AuthAttempt("XOAUTH2", mailbox, reply, False, reason, **ids)

    def _smtp_auth_disabled_reply(self, mailbox: str) -> str | None:
        with self._lock:
            if self._tenant_smtp_auth_disabled:
                scope = "Tenant"
            elif mailbox.lower() in self._mailboxes_smtp_auth_disabled:
                scope = "Mailbox"
            else:
                return None
        return (
            f"535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled "
            f"for the {scope}. Visit https://aka.ms/smtp_auth_disabled for more information. "
            f"{self.tail()}"
        )

    def _check_xoauth2(self, mailbox: str, token: str) -> AuthAttempt:
        identity = self.identity
        if identity is None:
            return self._denied(mailbox, "no_identity_linked")
        try:
            claims = identity.verify_token(token)
        except InvalidToken as exc:
            return self._denied(mailbox, exc.reason)
        app_id = str(claims.get("appid", "")).lower()
        tid = str(claims.get("tid", "")).lower()
        ids = {"app_id": app_id or None, "tenant_id": tid or None}
        audience = str(claims.get("aud", "")).rstrip("/").lower()
        if audience not in (identity.resource.lower(), EXCHANGE_APP_ID):
            return self._denied(mailbox, "wrong_audience", **ids)
        if str(claims.get("iss", "")).lower() != f"https://sts.windows.net/{tid}/":
            return self._denied(mailbox, "wrong_issuer", **ids)
        roles = claims.get("roles") or []
        if not isinstance(roles, list) or SMTP_SEND_AS_APP not in roles:
            return self._denied(mailbox, "missing_role", **ids)
        disabled = self._smtp_auth_disabled_reply(mailbox)
        if disabled is not None:
            return AuthAttempt("XOAUTH2", mailbox, disabled, False, "smtp_auth_disabled", **ids)
        with self._lock:
            sp = self._sps.get(app_id)
            has_access = (app_id, mailbox.lower()) in self._mailbox_access
        if sp is None:
            return self._denied(mailbox, "service_principal_not_registered", **ids)
        if sp.object_id != str(claims.get("oid", "")).lower():
            return self._denied(mailbox, "service_principal_object_id_mismatch", **ids)
        if sp.tenant_id is not None and sp.tenant_id != tid:
            return self._denied(mailbox, "wrong_tenant", **ids)
        if not has_access:
            return self._denied(mailbox, "no_mailbox_permission", **ids)
        return AuthAttempt("XOAUTH2", mailbox, "235 2.7.0 Authentication successful", True, "ok", **ids)

    def _check_password(self, mechanism: str, username: bytes | None, password: bytes | None) -> AuthAttempt:
        user = username.decode("utf-8", "replace") if username is not None else None
        if user is None or password is None:
            reply = f"501 5.5.2 Cannot decode response {self.tail()}"
            return AuthAttempt(mechanism, user, reply, False, "malformed")
        with self._lock:
            expected = self._users.get(user.lower())
        if expected is None or not secrets.compare_digest(expected.encode("utf-8"), password):
            reply = f"535 5.7.3 Authentication unsuccessful {self.tail()}"
            return AuthAttempt(mechanism, user, reply, False, "bad_credentials")
        disabled = self._smtp_auth_disabled_reply(user)
        if disabled is not None:
            return AuthAttempt(mechanism, user, disabled, False, "smtp_auth_disabled")
        return AuthAttempt(mechanism, user, "235 2.7.0 Authentication successful", True, "ok")

    def _judge_message(self, mailbox: str | None, mail_from: str | None, message: email.message.Message) -> str:
        if self.enforce_send_as and mailbox:
            from_addrs = [a for _, a in getaddresses(message.get_all("From", [])) if a]
            for sender in [*from_addrs, mail_from or ""]:
                if not sender or sender.lower() == mailbox.lower():
                    continue
                with self._lock:
                    granted = (mailbox.lower(), sender.lower()) in self._send_as
                if not granted:
                    return (
                        f"554 5.2.252 SendAsDenied; {mailbox} not allowed to send as {sender}; "
                        "STOREDRV.Submission.Exception:SendAsDeniedException."
                        "MapiExceptionSendAsDenied; Failed to process message due to a "
                        "permanent exception with message [BeginDiagnosticData]Cannot submit "
                        f"message. 0.35250:0A000000 [Hostname={self._mailbox_host}]"
                    )
        message_id = str(message.get("Message-ID", "")).strip()
        if not message_id:
            message_id = f"<{uuid.uuid4()}@{self._mailbox_host}>"
        return f"250 2.0.0 OK {message_id} [Hostname={self._mailbox_host}]"

    @property
    def _mailbox_host(self) -> str:
        return f"{self.mailbox_server}.{self.region}.PROD.OUTLOOK.COM"


class SilentServer(LoopbackServer):
    """TCP listener on 127.0.0.1 that accepts connections and never says a word."""

    def __init__(self) -> None:
        super().__init__()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._accepted_count = 0

    def start(self) -> SilentServer:
        if self._listener is not None:
            return self
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.settimeout(0.05)
        self._listener = listener
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="SilentServer", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self._stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._accepted(conn)
            with self._lock:
                self._conns.append(conn)
                self._accepted_count += 1

    def stop(self) -> None:
        """Close the listener and every accepted connection."""
        if self._listener is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
        self._listener.close()
        self._listener = None
        self._thread = None

    @property
    def port(self) -> int:
        if self._listener is None:
            raise RuntimeError("SilentServer is not started")
        return int(self._listener.getsockname()[1])

    @property
    def connections(self) -> int:
        with self._lock:
            return self._accepted_count
