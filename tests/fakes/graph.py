"""HTTPS fake of Microsoft Graph's ``sendMail`` (see shared/reference/microsoft-protocol-notes.md, section 8).

Contract:

- Listens on ``127.0.0.1:<ephemeral>`` with TLS from ``tests.fakes.tls``; TCP_NODELAY on
  every accepted socket; HTTP/1.1 keep-alive, so one client session is one connection.
- ``POST /v1.0/users/{id}/sendMail``: the body is either JSON (``{"message": {...},
  "saveToSentItems": ...}``) or, with ``Content-Type: text/plain``, the base64 of a MIME message.
  Success is ``202 Accepted`` with an empty body.
- The bearer token is checked as Graph does: signature and expiry (by the linked FakeIdentity),
  audience Microsoft Graph, then ``roles`` holding Mail.Send (or a delegated ``scp`` holding it)
  or an RBAC for Applications assignment covering the mailbox; then the mailbox (known, inside the
  app's management scope), the From address (the mailbox, or one it has Send As on) and the size
  (``size_limit``, about 4 MB of request body).
- Errors are Graph's JSON shape ``{"error": {"code", "message", "innerError": {"date",
  "request-id", "client-request-id"}}}``; ``throttle()`` answers 429 with ``Retry-After``;
  ``respond_with_status(non_json=True)`` answers a body that is not Graph's JSON (a proxy's page).
- Every request is recorded with its Authorization header redacted; accepted messages are kept.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import traceback
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import getaddresses
from typing import Any
from urllib.parse import unquote, urlsplit

import trustme

from tests.fakes.identity import (
    GRAPH_APP_ID,
    GRAPH_RESOURCE,
    FakeIdentity,
    HttpsFake,
    InvalidToken,
    RegisteredApp,
    _Handler,
    _Reply,
)

MAIL_SEND = "Mail.Send"
SIZE_LIMIT = 4 * 1024 * 1024
REDACTED = "<redacted>"


@dataclass
class GraphMailbox:
    address: str
    send_as: set[str] = field(default_factory=set)


@dataclass
class GraphRequest:
    """One request as the fake saw it; ``authorization`` is never the token itself."""

    method: str
    path: str
    content_type: str
    had_token: bool
    client_port: int
    status: int = 0
    code: str = ""


@dataclass
class GraphMessage:
    """A message Graph accepted: the mailbox of the URL, how it came, and what it says."""

    mailbox: str
    body_format: str  # "mime" or "json"
    from_address: str
    recipients: list[str]
    subject: str
    message: EmailMessage | None = field(default=None, repr=False)
    content: str = field(default="", repr=False)
    app_id: str = ""


@dataclass
class _Fault:
    status: int
    code: str
    message: str
    times: int | None
    retry_after: int | None = None
    non_json: bool = False
    stall: float = 0.0


class _GraphHandler(_Handler):
    server_version = "Microsoft-HTTPAPI/2.0"

    def _serve(self, method: str) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            reply = fake._handle(method, self.path, dict(self.headers.items()), body, self.client_address[1])
        except Exception:
            fake._note_error(traceback.format_exc())
            reply = _Reply(500, b"internal fake error", {"Content-Type": "text/plain"})
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)


class FakeGraph(HttpsFake):
    """Fake Microsoft Graph on ``https://127.0.0.1:<port>`` (``url``), trusting ``identity``'s tokens.

    Mailboxes, scopes and grants persist across ``reset()``; faults, records and
    ``size_limit`` do not (``reset(everything=True)`` clears all).
    """

    handler_class = _GraphHandler

    def __init__(self, identity: FakeIdentity, *, server_cert: trustme.LeafCert | None = None) -> None:
        super().__init__(server_cert=server_cert)
        self.identity = identity
        self.size_limit = SIZE_LIMIT
        self._mailboxes: dict[str, GraphMailbox] = {}
        # app id -> mailboxes the app may use (RBAC management scope / access policy); absent: all.
        self._scopes: dict[str, set[str]] = {}
        # app id -> mailboxes granted "Application Mail.Send" by RBAC for Applications.
        self._rbac: dict[str, set[str]] = {}
        self._faults: list[_Fault] = []
        self._requests: list[GraphRequest] = []
        self._messages: list[GraphMessage] = []

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    # directory setup

    def add_mailbox(self, address: str) -> GraphMailbox:
        with self._lock:
            mailbox = self._mailboxes.setdefault(address.lower(), GraphMailbox(address.lower()))
            return mailbox

    def grant_send_as(self, mailbox: str, sender: str) -> None:
        """Let ``mailbox`` send with From ``sender`` (Add-RecipientPermission ... -Trustee mailbox)."""
        with self._lock:
            self.add_mailbox(mailbox).send_as.add(sender.lower())

    def restrict_app(self, app: RegisteredApp, mailboxes: tuple[str, ...] | list[str]) -> None:
        """A management scope (or access policy): ``app`` may use only ``mailboxes``."""
        with self._lock:
            self._scopes[app.app_id] = {address.lower() for address in mailboxes}

    def assign_mail_send(self, app: RegisteredApp, mailboxes: tuple[str, ...] | list[str]) -> None:
        """RBAC for Applications: the role Application Mail.Send for ``mailboxes``, no role in the token."""
        with self._lock:
            self._rbac[app.app_id] = {address.lower() for address in mailboxes}

    # faults

    def fail_with(self, code: str, status: int, message: str = "", *, times: int | None = None) -> None:
        """Answer sendMail with Graph's error ``code`` and HTTP ``status``."""
        self._add(_Fault(status, code, message or f"The request failed with {code}.", times))

    def throttle(self, retry_after: int, *, times: int | None = 1, code: str = "ApplicationThrottled") -> None:
        """429 with ``Retry-After: retry_after``."""
        message = "Application is over its MailboxConcurrency limit." if code == "MailboxConcurrency" else (
            "Too many requests. Please retry after the time specified in the Retry-After header."
        )
        self._add(_Fault(429, code, message, times, retry_after=retry_after))

    def respond_with_status(self, status: int, *, non_json: bool = True, times: int | None = None) -> None:
        self._add(_Fault(status, f"http-{status}", "", times, non_json=non_json))

    def stall(self, seconds: float, *, times: int | None = 1) -> None:
        self._add(_Fault(0, "", "", times, stall=seconds))

    def _add(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.times is None or fault.times > 0:
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None

    # records

    @property
    def requests(self) -> list[GraphRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def messages(self) -> list[GraphMessage]:
        with self._lock:
            return list(self._messages)

    def reset(self, everything: bool = False) -> None:
        with self._lock:
            self._errors.clear()
            self._faults.clear()
            self._requests.clear()
            self._messages.clear()
            self.size_limit = SIZE_LIMIT
            if everything:
                self._mailboxes.clear()
                self._scopes.clear()
                self._rbac.clear()

    # request handling

    def _handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes, port: int) -> _Reply:
        lowered = {name.lower(): value for name, value in headers.items()}
        path = urlsplit(raw_path).path
        record = GraphRequest(
            method, path, lowered.get("content-type", ""), lowered.get("authorization", "").startswith("Bearer "), port
        )
        with self._lock:
            self._requests.append(record)
        reply = self._answer(method, path, lowered, body)
        record.status = reply.status
        if reply.status >= 400:
            try:
                record.code = json.loads(reply.body)["error"]["code"]
            except (ValueError, KeyError, TypeError):
                record.code = f"http-{reply.status}"
        return reply

    def _answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> _Reply:
        segments = [unquote(part) for part in path.split("/") if part]
        if method != "POST" or len(segments) != 4 or segments[:2] != ["v1.0", "users"] or segments[3] != "sendMail":
            return _error(404, "Request_UnsupportedQuery", f"Unsupported request: {method} {path}.")
        fault = self._take_fault()
        if fault is not None and fault.stall:
            time.sleep(fault.stall)
        elif fault is not None:
            return _fault_reply(fault)
        claims, refusal = self._authorize(headers.get("authorization", ""))
        if refusal is not None:
            return refusal
        mailbox_key = segments[2].lower()
        with self._lock:
            mailbox = self._mailboxes.get(mailbox_key)
        if mailbox is None:
            return _error(404, "ErrorInvalidUser", f"The requested user '{segments[2]}' is invalid.")
        if not self._may_use(claims, mailbox.address):
            return _error(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        if len(body) > self.size_limit:
            return _error(
                413,
                "ErrorMessageSizeExceeded",
                "The message exceeds the maximum supported size of 4 MB when in MIME format.",
            )
        parsed = _parse_message(headers.get("content-type", ""), body, mailbox.address)
        if isinstance(parsed, _Reply):
            return parsed
        if parsed.from_address.lower() not in ({mailbox.address} | mailbox.send_as):
            return _error(
                403,
                "ErrorSendAsDenied",
                "The user account which was used to submit this request does not have the right to send mail "
                "on behalf of the specified sending account., Cannot submit message.",
            )
        parsed.app_id = str(claims.get("appid", ""))
        with self._lock:
            self._messages.append(parsed)
        return _Reply(202, b"", {"request-id": str(uuid.uuid4()), "client-request-id": str(uuid.uuid4())})

    def _authorize(self, authorization: str) -> tuple[dict[str, Any], _Reply | None]:
        if not authorization.startswith("Bearer "):
            return {}, _error(401, "InvalidAuthenticationToken", "Access token is empty.")
        try:
            claims = self.identity.verify_token(authorization.removeprefix("Bearer ").strip())
        except InvalidToken as exc:
            message = {
                "expired": "Lifetime validation failed, the token is expired.",
                "malformed": "IDX14100: JWT is not well formed.",
            }.get(exc.reason, "Access token validation failure.")
            return {}, _error(401, "InvalidAuthenticationToken", message)
        if str(claims.get("aud", "")).rstrip("/") not in (GRAPH_RESOURCE, GRAPH_APP_ID):
            return {}, _error(401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")
        return claims, None

    def _may_use(self, claims: dict[str, Any], mailbox: str) -> bool:
        app_id = str(claims.get("appid", ""))
        with self._lock:
            scope = self._scopes.get(app_id)
            rbac = self._rbac.get(app_id, set())
        if mailbox in rbac:
            return True
        consented = MAIL_SEND in (claims.get("roles") or []) or MAIL_SEND in str(claims.get("scp", "")).split()
        return consented and (scope is None or mailbox in scope)


def _parse_message(content_type: str, body: bytes, mailbox: str) -> GraphMessage | _Reply:
    if content_type.split(";")[0].strip().lower() == "text/plain":
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return _error(400, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content.")
        message = message_from_bytes(raw, policy=policy.default)
        headers = [*message.get_all("To", []), *message.get_all("Cc", []), *message.get_all("Bcc", [])]
        senders = getaddresses(message.get_all("From", []))
        return GraphMessage(
            mailbox,
            "mime",
            senders[0][1] if senders else mailbox,
            [address for _, address in getaddresses(headers)],
            str(message.get("Subject", "")),
            message=message,  # type: ignore[arg-type]
            content=message.get_body(("plain",)).get_content() if message.get_body(("plain",)) else "",
        )
    try:
        document = json.loads(body)
        message = document["message"]
        recipients = [
            entry["emailAddress"]["address"]
            for kind in ("toRecipients", "ccRecipients", "bccRecipients")
            for entry in message.get(kind, [])
        ]
        sender = (message.get("from") or {}).get("emailAddress", {}).get("address", mailbox)
    except (ValueError, KeyError, TypeError, AttributeError):
        return _error(400, "ErrorInvalidRequest", "Cannot process the request because it is malformed or incorrect.")
    if not recipients:
        return _error(400, "ErrorInvalidRecipients", "At least one recipient isn't valid.")
    return GraphMessage(
        mailbox, "json", sender, recipients, str(message.get("subject", "")),
        content=str((message.get("body") or {}).get("content", "")),
    )


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> _Reply:
    request_id = str(uuid.uuid4())
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": request_id,
                "client-request-id": request_id,
            },
        }
    }
    return _Reply(
        status,
        json.dumps(body).encode(),
        {"Content-Type": "application/json", "request-id": request_id, **(headers or {})},
    )


def _fault_reply(fault: _Fault) -> _Reply:
    if fault.non_json:
        page = f"<html><body><h1>{fault.status} Error</h1><p>The proxy could not serve this request.</p></body></html>"
        return _Reply(fault.status, page.encode(), {"Content-Type": "text/html"})
    extra = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
    return _error(fault.status, fault.code, fault.message, extra)
