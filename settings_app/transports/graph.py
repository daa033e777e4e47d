"""Microsoft Graph as a transport: ``POST /v1.0/users/{mailbox}/sendMail`` with the message as MIME.

dns (the Graph host), the token (audience Microsoft Graph, role Mail.Send), then one sendMail
request per message over one HTTPS session. No SMTP AUTH, no Exchange service principal: it
works in tenants that have SMTP AUTH turned off. Every request goes through settings_app.http.
A failed request raises GraphError: Graph's own error code (``ErrorAccessDenied``...),
``http-<status>`` when the answer is not Graph's JSON, or a transport code (``timeout``,
``dns``, ``refused``, ``tls-untrusted``...).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from urllib.parse import quote, urlsplit

from django.conf import settings as django_settings
from django.utils.functional import Promise
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from settings_app import http
from settings_app.clouds import CLOUDS, DEFAULT_CLOUD
from settings_app.deadline import Deadline, DeadlineExceeded
from settings_app.identity import Resource, TokenProvider, token_provider
from settings_app.oauth import AccessToken
from settings_app.tls import Trust
from settings_app.transports.base import PlanStep, TokenRequest
from settings_app.values import CONTROL_CHARACTERS, ConnectionSettings, ProtocolError, Redactor

logger = logging.getLogger(__name__)

STEPS = ("dns", "token", "send", "send_as")
STEP_LABELS = {
    "dns": _("Resolve the Microsoft Graph host"),
    "token": _("Get an OAuth 2.0 token from Microsoft Entra ID"),
    "send": _("Send a test message through Microsoft Graph"),
    "send_as": _("Send as a user (Use user's email as sender)"),
}
MAIL_SEND = "Mail.Send"
# Microsoft Graph's application ID: some tenants issue tokens with it as the audience.
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
# Graph takes about 4 MB per request; the base64 of the MIME message is the request body.
MAX_REQUEST_BYTES = 4 * 1024 * 1024
# Retry-After when a 429 names none (seconds).
DEFAULT_RETRY_AFTER = 30
_ROLE_HINT = _(
    "The token carries no %(role)s role: add the application permission Microsoft Graph > %(role)s and "
    "grant admin consent. Not needed if the app is granted the role with RBAC for Applications "
    "(New-ManagementRoleAssignment -Role 'Application Mail.Send'), which puts no role in the token."
)
_AUDIENCE_HINT = _("The token's audience is %(actual)s, not Microsoft Graph (%(audience)s): Graph will refuse it.")


class GraphError(ProtocolError):
    """A sendMail request failed. ``retry_after`` is the seconds Graph asked to wait (429), else None."""

    def __init__(
        self, code: str, message: str, reply: str = "", *, retryable: bool = False, retry_after: int | None = None
    ) -> None:
        super().__init__(code, message, reply, step="send", retryable=retryable)
        self.retry_after = retry_after


def graph_resource(cloud: str) -> Resource:
    graph_host = CLOUDS.get(cloud, CLOUDS[DEFAULT_CLOUD]).graph_host
    return Resource(
        f"https://{graph_host}/.default",
        (f"https://{graph_host}", GRAPH_APP_ID),
        MAIL_SEND,
        _ROLE_HINT,
        audience_hint=_AUDIENCE_HINT,
    )


def graph_url(cloud: str) -> str:
    """Where Graph requests go: MAILADMIN_GRAPH_URL, else the cloud's Graph host."""
    override = django_settings.MAILADMIN_GRAPH_URL
    return (override or f"https://{CLOUDS.get(cloud, CLOUDS[DEFAULT_CLOUD]).graph_host}").rstrip("/")


@dataclass(frozen=True)
class GraphTransport:
    """Microsoft 365 through Microsoft Graph's sendMail, with an app-only token."""

    name: str = "graph"
    uses_oauth: bool = True
    needs_server: bool = False
    finding_sources: tuple[str, ...] = ("graph",)
    steps: tuple[str, ...] = STEPS
    labels: dict[str, str | Promise] = field(default_factory=lambda: dict(STEP_LABELS))

    def token_provider(self, config: ConnectionSettings, trust: Trust) -> TokenProvider | None:
        return token_provider(config, graph_resource(config.cloud), trust)

    def endpoint(self, config: ConnectionSettings) -> str:
        """Where the messages go, for the test history (there is no server and port)."""
        return urlsplit(graph_url(config.cloud)).netloc

    def plan(
        self,
        config: ConnectionSettings,
        *,
        deadline: Deadline,
        trust: Trust,
        tokens: TokenProvider | None,
        redactor: Redactor,
        concurrent_token: bool = False,
    ) -> GraphPlan:
        plan = GraphPlan(config, deadline=deadline, trust=trust, tokens=tokens, redactor=redactor)
        if concurrent_token:
            plan.request_token_in_background()
        return plan


MICROSOFT_GRAPH = GraphTransport()


class GraphPlan:
    """One HTTPS session to Graph for one mailbox; ``token`` is the access token in use."""

    def __init__(
        self,
        config: ConnectionSettings,
        *,
        deadline: Deadline,
        trust: Trust,
        tokens: TokenProvider | None,
        redactor: Redactor,
    ) -> None:
        assert tokens is not None
        self.config = config
        self.base_url = graph_url(config.cloud)
        split = urlsplit(self.base_url)
        self.host = split.hostname or ""
        self.port = split.port or 443
        self.mailbox = config.username.strip()
        self.default_test_recipient = self.mailbox
        self.deadline = deadline
        self.trust = trust
        self.redactor = redactor
        self._token = TokenRequest(tokens, deadline, redactor)
        self._session: http.DeadlineSession | None = None

    def request_token_in_background(self) -> None:
        """Ask for the token now, alongside DNS, which it does not need."""
        self._token.start_in_background()

    @property
    def token(self) -> AccessToken | None:
        return self._token.token

    @property
    def token_claims(self) -> dict:
        return self._token.claims

    @property
    def warnings(self) -> dict[str, list[str]]:
        return {"token": self._token.warnings}

    @property
    def timings(self) -> dict[str, int]:
        return {"token": self._token.elapsed_ms} if self._token.elapsed_ms is not None else {}

    @property
    def test_message_note(self) -> str:
        return gettext("Sent through Microsoft Graph (%(host)s) from the mailbox %(mailbox)s.") % {
            "host": self.host,
            "mailbox": self.mailbox,
        }

    @property
    def send_url(self) -> str:
        return f"{self.base_url}/v1.0/users/{quote(self.mailbox, safe='@')}/sendMail"

    def opening(self) -> Iterator[PlanStep]:
        proxy = http.proxy_for(self.base_url)
        if proxy:
            why = gettext("Requests go through the proxy %(proxy)s (HTTPS_PROXY), which resolves the name.")
            yield PlanStep("dns", skip_reason=why % {"proxy": proxy})
        else:
            yield PlanStep("dns", self._resolve)
        yield self._token.step()

    def _resolve(self) -> str:
        try:
            return ", ".join(http.resolve(self.host, self.port, self.deadline))
        except (OSError, DeadlineExceeded) as exc:
            failure = http.transport_failure(exc, self.host)
        raise GraphError(failure.code, failure.message, failure.detail)

    def refuse_unsendable(self, *addresses: str) -> None:
        if any(CONTROL_CHARACTERS.search(address) for address in addresses):
            raise GraphError(
                "control-characters",
                "The sender or recipient address contains a line break or another control character: "
                "remove it and save again.",
            )

    def send(self, sender: str, recipients: Sequence[str], message: bytes, deadline: Deadline | None = None) -> str:
        """One sendMail request with the message as base64 MIME; recipients missing from its
        To and Cc headers are added as Bcc (Graph takes the recipients from the headers)."""
        body = base64.b64encode(_with_bcc(message, recipients))
        if len(body) > MAX_REQUEST_BYTES:
            raise GraphError(
                "ErrorMessageSizeExceeded",
                f"The message is {len(body) / 1024 / 1024:.1f} MB as Graph receives it (base64); Microsoft Graph "
                f"takes at most {MAX_REQUEST_BYTES // 1024 // 1024} MB per sendMail request.",
            )
        response = self._post(body, deadline)
        # A cached token Graph no longer accepts (revoked, or the grants changed): once more, fresh.
        if response.status_code == 401 and self._token.renew_refused():
            logger.warning("Microsoft Graph refused the cached access token; requested a new one.")
            response = self._post(body, deadline)
        if response.status_code == 202:
            request_id = response.headers.get("request-id", "")
            return f"202 Accepted{f' (request-id {request_id})' if request_id else ''}"
        raise _graph_error(response, self.token_claims, sender)

    def _post(self, body: bytes, deadline: Deadline | None) -> http.Response:
        assert self.token is not None
        if self._session is None:
            self._session = http.DeadlineSession(self.deadline, self.trust.context, self.trust.ca_bundle)
        try:
            return self._session.post(
                self.send_url,
                data=body,
                headers={"Authorization": f"Bearer {self.token.value}", "Content-Type": "text/plain"},
                deadline=deadline or self.deadline,
            )
        except (http.RequestException, DeadlineExceeded) as exc:
            failure = http.transport_failure(exc, self.host)
        # Raised outside the except block: the requests exception holds the request and its token.
        # "unreachable" covers a kept-alive connection the server closed: worth a new session. A
        # timeout is not: Graph may have accepted the message.
        raise GraphError(failure.code, failure.message, failure.detail, retryable=failure.code == "unreachable")

    def closing(self, failed: bool) -> None:
        """Graph has no session to end: no step."""
        return None

    def quit(self, deadline: Deadline | None = None) -> str:
        self.close()
        return ""

    def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.close()


def _with_bcc(message: bytes, recipients: Sequence[str]) -> bytes:
    headers = BytesHeaderParser().parsebytes(message)
    shown = {
        address.lower()
        for _, address in getaddresses([*headers.get_all("To", []), *headers.get_all("Cc", [])])
    }
    hidden = [address for address in recipients if address.lower() not in shown]
    if not hidden:
        return message
    linesep = b"\r\n" if b"\r\n" in message.split(b"\n", 1)[0] + b"\n" else b"\n"
    return b"Bcc: " + ", ".join(hidden).encode() + linesep + message


def _graph_error(response: http.Response, claims: dict, sender: str) -> GraphError:
    status = response.status_code
    try:
        error = response.json().get("error") or {}
        code, message = str(error["code"]), str(error.get("message", ""))
    except (ValueError, AttributeError, KeyError, TypeError):
        code, message = f"http-{status}", ""
    reply = f"{status} {code}: {message}".rstrip(": ") if message else f"{status} {response.text[:300]}".strip()
    retry_after = None
    if status == 429:
        header = response.headers.get("Retry-After", "")
        retry_after = int(header) if header.isdigit() else DEFAULT_RETRY_AFTER
        reply += f" (Retry-After: {retry_after} s)"
        text = f"Microsoft Graph is throttling this application; retry in {retry_after} s."
    else:
        text = message or f"Microsoft Graph answered HTTP {status}."
    if code == "ErrorAccessDenied":
        # Tells a missing consent from a mailbox outside the app's scope (settings_app.findings.graph).
        reply += f" [token roles: {', '.join(claims.get('roles') or []) or 'none'}]"
    elif code == "ErrorSendAsDenied":
        reply += f" [From: {sender}]"
    return GraphError(code, text, reply, retryable=status >= 500, retry_after=retry_after)
