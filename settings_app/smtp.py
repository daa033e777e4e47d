"""SMTP submission: the only module that imports smtplib.

Each function is one protocol step on an ``smtplib.SMTP`` connection, bounded by
the caller's Deadline, and raises SmtpError with a stable code: ``<reply>-<enhanced
status>`` for server replies (``535-5.7.3``) or ``dns``, ``refused``, ``timeout``,
``disconnected``, ``tls-untrusted``, ``tls-hostname``, ``starttls-unsupported``,
``xoauth2-unsupported``, ``auth-unsupported``, ``non-ascii``, ``control-characters``.
"""

from __future__ import annotations

import base64
import re
import smtplib
import socket
import ssl
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager

from django.views.decorators.debug import sensitive_variables

from settings_app import hosts
from settings_app.deadline import Deadline, DeadlineExceeded
from settings_app.values import CONTROL_CHARACTERS, ProtocolError

# What every SMTP failure is, for code that must not import smtplib (the email backend's errors).
SMTPException = smtplib.SMTPException
_HOSTNAME_MISMATCH = 62  # X509_V_ERR_HOSTNAME_MISMATCH
_ENHANCED_STATUS = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})\b")
Address = tuple  # one getaddrinfo() entry
# Name lookups run on these long-lived workers: starting a thread per connection cost more than
# the lookup itself. A lookup that hangs holds one worker; later ones still time out on their deadline.
_RESOLVERS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="smtp-resolve")


class SmtpError(ProtocolError):
    """An SMTP step failed. ``reply`` is the server's answer (never holds a secret).

    Retryable when the server hung up or answered 421: the message in flight was not accepted.
    """

    def __init__(self, code: str, message: str, reply: str = "") -> None:
        super().__init__(code, message, reply, retryable=code == "disconnected" or code.startswith("421"))


def reply_text(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    return f"{code} {text}".strip()


def reply_code(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    enhanced = _ENHANCED_STATUS.match(text.strip())
    return f"{code}-{enhanced.group(1)}" if enhanced else str(code)


def _classify(exc: BaseException, host: str) -> SmtpError:
    if isinstance(exc, SmtpError):
        return exc
    if isinstance(exc, DeadlineExceeded):
        return SmtpError("timeout", f"Stopped: {exc}.")
    if isinstance(exc, ssl.SSLCertVerificationError):
        if exc.verify_code == _HOSTNAME_MISMATCH:
            return SmtpError("tls-hostname", f"The certificate presented is not valid for {host}.", exc.verify_message)
        return SmtpError(
            "tls-untrusted", f"The certificate of {host} is not trusted by this server.", exc.verify_message
        )
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, message = next(iter(exc.recipients.values()))
        return SmtpError(reply_code(code, message), "The server refused the recipient.", reply_text(code, message))
    if isinstance(exc, smtplib.SMTPResponseException):
        return SmtpError(
            reply_code(exc.smtp_code, exc.smtp_error),
            "The server refused the command.",
            reply_text(exc.smtp_code, exc.smtp_error),
        )
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        if "timed out" in str(exc):
            return SmtpError("timeout", f"{host} stopped answering.")
        return SmtpError("disconnected", f"{host} closed the connection.", str(exc))
    if isinstance(exc, socket.gaierror):
        return SmtpError("dns", f"The name {host} cannot be resolved.", str(exc))
    if isinstance(exc, TimeoutError):
        return SmtpError("timeout", f"{host} did not answer in time.")
    if isinstance(exc, ConnectionRefusedError):
        return SmtpError("refused", f"{host} refused the connection (nothing listens on that port).")
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, EOFError, ssl.SSLEOFError)):
        return SmtpError("disconnected", f"{host} closed the connection.", str(exc))
    if isinstance(exc, ssl.SSLError):
        return SmtpError("tls-failed", f"The TLS handshake with {host} failed.", str(exc))
    if isinstance(exc, OSError):
        return SmtpError("unreachable", f"Cannot reach {host}.", str(exc))
    raise exc


@contextmanager
def _protocol_errors(host: str) -> Iterator[None]:
    try:
        yield
    except (OSError, EOFError, smtplib.SMTPException, DeadlineExceeded) as exc:
        raise _classify(exc, host) from None


def resolve(host: str, port: int, deadline: Deadline) -> list[Address]:
    """The host's TCP addresses. getaddrinfo has no timeout, so it runs in a worker."""
    future = _RESOLVERS.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        with _protocol_errors(host):
            addresses = future.result(timeout=deadline.remaining())
    except FutureTimeout:
        future.cancel()  # still queued behind hung lookups: never run it
        raise SmtpError("dns", f"The name {host} could not be resolved in time.") from None
    # Every path connects through here: the allow-list holds for stored and restored settings too.
    if refusal := hosts.connection_refusal(host, addresses):
        raise SmtpError(*refusal)
    return addresses


def _connect_any(addresses: Sequence[Address], timeout: float) -> socket.socket:
    last_error: OSError | None = None
    for family, socktype, proto, _, sockaddr in addresses:
        sock = socket.socket(family, socktype, proto)
        sock.settimeout(timeout)
        try:
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            last_error = exc
    raise last_error or OSError("no address to connect to")


class _ResolvedSMTP(smtplib.SMTP):
    """SMTP to addresses resolved beforehand, verifying TLS against ``server_name``."""

    def __init__(self, server_name: str, addresses: Sequence[Address], timeout: float) -> None:
        self._addresses = addresses
        super().__init__(local_hostname=socket.gethostname() or "localhost", timeout=timeout)
        self._host = server_name

    def _get_socket(self, host, port, timeout):
        return _connect_any(self._addresses, timeout)


class _ResolvedSMTP_SSL(smtplib.SMTP_SSL):
    def __init__(
        self, server_name: str, addresses: Sequence[Address], timeout: float, context: ssl.SSLContext
    ) -> None:
        self._addresses = addresses
        super().__init__(local_hostname=socket.gethostname() or "localhost", timeout=timeout, context=context)
        self._host = server_name

    def _get_socket(self, host, port, timeout):
        return self.context.wrap_socket(_connect_any(self._addresses, timeout), server_hostname=self._host)


def open_connection(
    host: str,
    port: int,
    addresses: Sequence[Address],
    *,
    implicit_tls: bool,
    ssl_context: ssl.SSLContext,
    deadline: Deadline,
) -> tuple[smtplib.SMTP, str]:
    """A connection that has read the server's 220 banner, and the banner."""
    with _protocol_errors(host):
        timeout = deadline.remaining()
        if implicit_tls:
            connection = _ResolvedSMTP_SSL(host, addresses, timeout, ssl_context)
        else:
            connection = _ResolvedSMTP(host, addresses, timeout)
        code, message = connection.connect(host, port)
        if code != 220:
            connection.close()
            raise smtplib.SMTPConnectError(code, message)
    return connection, reply_text(code, message)


def _arm(connection: smtplib.SMTP, deadline: Deadline) -> None:
    if connection.sock is None:
        raise smtplib.SMTPServerDisconnected("not connected")
    connection.sock.settimeout(deadline.remaining())


def ehlo(connection: smtplib.SMTP, host: str, deadline: Deadline) -> str:
    with _protocol_errors(host):
        _arm(connection, deadline)
        code, message = connection.ehlo()
        if code != 250:
            raise smtplib.SMTPHeloError(code, message)
    return reply_text(code, message)


def starttls(connection: smtplib.SMTP, host: str, ssl_context: ssl.SSLContext, deadline: Deadline) -> str:
    """Upgrade to TLS, verifying the certificate against ``host``. EHLO must follow."""
    if not connection.has_extn("starttls"):
        raise SmtpError("starttls-unsupported", f"{host} does not offer STARTTLS after EHLO.")
    with _protocol_errors(host):
        _arm(connection, deadline)
        code, message = connection.starttls(context=ssl_context)
    return reply_text(code, message)


def offered_auth_mechanisms(connection: smtplib.SMTP) -> list[str]:
    return connection.esmtp_features.get("auth", "").upper().split()


def require_sendable(what: str, *values: str) -> None:
    """Refuse values that would break or smuggle an SMTP command line, before smtplib sees them.

    smtplib sends commands and AUTH data as ASCII, and its UnicodeEncodeError would
    carry the whole line, token or password included; a line break would end the
    command early (smtplib raises ValueError, but only on command lines).
    """
    if any(CONTROL_CHARACTERS.search(value) for value in values):
        raise SmtpError(
            "control-characters",
            f"The {what} contains a line break or another control character: remove it and save again.",
        )
    if not all(value.isascii() for value in values):
        raise SmtpError(
            "non-ascii",
            f"The {what} contains characters other than ASCII (an accented letter?), which cannot be "
            "sent to the server: use the plain ASCII form.",
        )


@sensitive_variables()
def xoauth2_response(username: str, token: str) -> str:
    """The SASL XOAUTH2 initial response, before base64 (smtplib encodes it)."""
    return f"user={username}\x01auth=Bearer {token}\x01\x01"


@sensitive_variables()
def xoauth2_redactions(username: str, token: str) -> tuple[str, str]:
    """The token and its base64 XOAUTH2 form, as they could appear in a reply or a trace."""
    return token, base64.b64encode(xoauth2_response(username, token).encode()).decode()


@sensitive_variables()
def authenticate_xoauth2(connection: smtplib.SMTP, host: str, username: str, token: str, deadline: Deadline) -> str:
    """AUTH XOAUTH2 with the token as initial response; returns the 235 reply."""
    if "XOAUTH2" not in offered_auth_mechanisms(connection):
        offered = " ".join(offered_auth_mechanisms(connection)) or "none"
        raise SmtpError(
            "xoauth2-unsupported", f"{host} does not offer AUTH XOAUTH2 (offered: {offered}).", ""
        )
    require_sendable("username (the mailbox address)", username)
    sasl = xoauth2_response(username, token)
    with _protocol_errors(host):
        _arm(connection, deadline)
        # smtplib returns normally on 503 ("Send hello first"), which is still a failure.
        code, message = connection.auth("XOAUTH2", lambda challenge=None: sasl, initial_response_ok=True)
        if code != 235:
            raise smtplib.SMTPAuthenticationError(code, message)
    return reply_text(code, message)


@sensitive_variables()
def authenticate_password(
    connection: smtplib.SMTP, host: str, username: str, password: str, deadline: Deadline
) -> str:
    """AUTH with the best mechanism the server offers (CRAM-MD5, PLAIN, LOGIN)."""
    if not offered_auth_mechanisms(connection):
        raise SmtpError("auth-unsupported", f"{host} offers no AUTH mechanism on this connection.")
    require_sendable("username or password", username, password)
    with _protocol_errors(host):
        _arm(connection, deadline)
        try:
            code, message = connection.login(username, password)
        except smtplib.SMTPException as exc:
            if isinstance(exc, smtplib.SMTPResponseException):
                raise
            raise SmtpError("auth-unsupported", f"{host} offers no AUTH mechanism this panel supports.") from None
    return reply_text(code, message)


def send_message(
    connection: smtplib.SMTP,
    host: str,
    from_addr: str,
    to_addrs: Sequence[str],
    message: bytes,
    deadline: Deadline,
) -> str:
    """MAIL, RCPT and DATA; returns the server's reply to the end of data.

    Exchange refuses a sender it may not send as only after DATA, so a test that
    stops earlier would miss it.
    """
    require_sendable("sender or recipient address", from_addr, *to_addrs)
    with _protocol_errors(host):
        _arm(connection, deadline)
        code, reply = connection.mail(from_addr)
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, reply, from_addr)
        for recipient in to_addrs:
            _arm(connection, deadline)
            code, reply = connection.rcpt(recipient)
            if code not in (250, 251):
                raise smtplib.SMTPRecipientsRefused({recipient: (code, reply)})
        _arm(connection, deadline)
        code, reply = connection.data(message)
        if code != 250:
            raise smtplib.SMTPDataError(code, reply)
    return reply_text(code, reply)


QUIT_SENT = "QUIT sent"


def quit_session(connection: smtplib.SMTP, host: str, deadline: Deadline) -> str:
    """Send QUIT and close the connection without reading the 221.

    The reply carries nothing we act on (the mail is already accepted or refused) and
    waiting for it costs a full network round trip per connection.
    """
    try:
        with _protocol_errors(host):
            _arm(connection, deadline)
            connection.putcmd("quit")
        return QUIT_SENT
    finally:
        connection.close()


def close(connection: smtplib.SMTP) -> None:
    """Drop the connection without a word (after a failure)."""
    connection.close()
