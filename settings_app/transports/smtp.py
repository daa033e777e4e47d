"""SMTP submission as a transport: the one plan of the SMTP conversation.

dns, connect, EHLO, STARTTLS, EHLO again, the token (Exchange Online only), AUTH; then MAIL,
RCPT, DATA per message and QUIT. The connection test and the email backend both run this
plan; settings_app.smtp (the only module importing smtplib) does each protocol step.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from django.utils.functional import Promise
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_variables

from settings_app import smtp
from settings_app.clouds import CLOUDS, DEFAULT_CLOUD
from settings_app.deadline import Deadline
from settings_app.identity import Resource, TokenProvider, token_provider
from settings_app.oauth import AccessToken
from settings_app.tls import Trust
from settings_app.transports.base import PlanStep, TokenRequest
from settings_app.values import ConnectionSettings, Redactor

logger = logging.getLogger(__name__)

STEPS = ("dns", "connect", "ehlo", "starttls", "ehlo_tls", "token", "auth", "send", "send_as", "quit")
STEP_LABELS = {
    "dns": _("Resolve the server name"),
    "connect": _("Connect and read the greeting"),
    "ehlo": _("Say EHLO"),
    "starttls": _("Start TLS"),
    "ehlo_tls": _("Say EHLO again over TLS"),
    "token": _("Get an OAuth 2.0 token from Microsoft Entra ID"),
    "auth": _("Authenticate"),
    "send": _("Send a test message"),
    "send_as": _("Send as a user (Use user's email as sender)"),
    "quit": _("Say QUIT"),
}
EXCHANGE_ROLE = "SMTP.SendAsApp"
# Exchange Online's application ID: some tenants issue tokens with it as the audience.
EXCHANGE_APP_ID = "00000002-0000-0ff1-ce00-000000000000"
_ROLE_HINT = _(
    "The token carries no %(role)s role: add the application permission "
    "Office 365 Exchange Online > %(role)s and grant admin consent "
    "(not needed only if you use Exchange App RBAC)."
)


def exchange_resource(cloud: str) -> Resource:
    settings = CLOUDS.get(cloud, CLOUDS[DEFAULT_CLOUD])
    return Resource(settings.scope, (settings.token_audience, EXCHANGE_APP_ID), EXCHANGE_ROLE, _ROLE_HINT)


@dataclass(frozen=True)
class SmtpTransport:
    """SMTP with a password (``uses_oauth`` False) or with Exchange Online's XOAUTH2."""

    name: str
    uses_oauth: bool
    finding_sources: tuple[str, ...]
    steps: tuple[str, ...] = STEPS
    labels: dict[str, str | Promise] = field(default_factory=lambda: dict(STEP_LABELS))

    def token_provider(self, config: ConnectionSettings, trust: Trust) -> TokenProvider | None:
        return token_provider(config, exchange_resource(config.cloud), trust) if self.uses_oauth else None

    def plan(
        self,
        config: ConnectionSettings,
        *,
        deadline: Deadline,
        trust: Trust,
        tokens: TokenProvider | None,
        redactor: Redactor,
        concurrent_token: bool = False,
    ) -> SmtpPlan:
        plan = SmtpPlan(self, config, deadline=deadline, trust=trust, tokens=tokens, redactor=redactor)
        if concurrent_token and tokens is not None:
            plan.request_token_in_background()
        return plan


PLAIN_SMTP = SmtpTransport("smtp", uses_oauth=False, finding_sources=("smtp",))
EXCHANGE_ONLINE_SMTP = SmtpTransport("smtp", uses_oauth=True, finding_sources=("exchange", "smtp"))


class SmtpPlan:
    """One SMTP session, step by step. ``token`` is the access token AUTH used, if any."""

    default_test_recipient = ""

    def __init__(
        self,
        transport: SmtpTransport,
        config: ConnectionSettings,
        *,
        deadline: Deadline,
        trust: Trust,
        tokens: TokenProvider | None,
        redactor: Redactor,
    ) -> None:
        self.transport = transport
        self.config = config
        self.host = config.server
        self.deadline = deadline
        self.trust = trust
        self.redactor = redactor
        self.connection = None
        self._addresses: list = []
        self._token = (
            TokenRequest(tokens, deadline, redactor, lambda token: smtp.xoauth2_redactions(config.username, token))
            if tokens is not None
            else None
        )

    def request_token_in_background(self) -> None:
        """Ask for the token now, alongside DNS, connect, EHLO and STARTTLS, which it does not need."""
        assert self._token is not None
        self._token.start_in_background()

    @property
    def token(self) -> AccessToken | None:
        return self._token.token if self._token is not None else None

    @property
    def token_claims(self) -> dict:
        return self._token.claims if self._token is not None else {}

    @property
    def warnings(self) -> dict[str, list[str]]:
        return {"token": self._token.warnings} if self._token is not None else {}

    @property
    def timings(self) -> dict[str, int]:
        elapsed = self._token.elapsed_ms if self._token is not None else None
        return {"token": elapsed} if elapsed is not None else {}

    @property
    def test_message_note(self) -> str:
        return gettext("Server: %(server)s:%(port)s") % {"server": self.host, "port": self.config.port}

    def opening(self) -> Iterator[PlanStep]:
        security = self.config.connection_security
        yield PlanStep("dns", self._resolve)
        yield PlanStep("connect", self._connect)
        yield PlanStep("ehlo", self._ehlo)
        if security == "starttls":
            yield PlanStep("starttls", self._starttls)
            yield PlanStep("ehlo_tls", self._ehlo)
        else:
            why = (
                gettext("The connection is already encrypted (SSL/TLS).")
                if security == "ssl_tls"
                else gettext("Connection security is None: the connection is not encrypted.")
            )
            yield PlanStep("starttls", skip_reason=why)
            yield PlanStep("ehlo_tls", skip_reason=why)
        if self._token is not None:
            yield self._token.step()
        else:
            yield PlanStep("token", skip_reason=gettext("Plain SMTP does not use OAuth 2.0."))
        if self._token is not None or self.config.use_secure_auth:
            yield PlanStep("auth", self._authenticate)
        else:
            yield PlanStep("auth", skip_reason=gettext("Secure authentication is off."))

    def _resolve(self) -> str:
        self._addresses = smtp.resolve(self.host, self.config.port, self.deadline)
        return ", ".join(sorted({address[4][0] for address in self._addresses}))

    def _connect(self) -> str:
        self.connection, banner = smtp.open_connection(
            self.host,
            self.config.port,
            self._addresses,
            implicit_tls=self.config.connection_security == "ssl_tls",
            ssl_context=self.trust.context,
            deadline=self.deadline,
        )
        return banner

    def _ehlo(self) -> str:
        return smtp.ehlo(self.connection, self.host, self.deadline)

    def _starttls(self) -> str:
        return smtp.starttls(self.connection, self.host, self.trust.context, self.deadline)

    @sensitive_variables()
    def _xoauth2(self) -> str:
        assert self.token is not None
        username, token = self.config.username, self.token.value
        return smtp.authenticate_xoauth2(self.connection, self.host, username, token, self.deadline)

    @sensitive_variables()
    def _authenticate(self) -> str:
        config = self.config
        if self._token is None:
            return smtp.authenticate_password(
                self.connection, self.host, config.username, config.password, self.deadline
            )
        assert self.token is not None
        try:
            return self._xoauth2()
        except smtp.SmtpError as exc:
            # A cached token Exchange no longer accepts (revoked, or the app's grants
            # changed) is forgotten and AUTH tried once with a fresh one.
            if exc.code != "535-5.7.3" or not self._token.renew_refused():
                raise
            logger.warning("Exchange refused the cached access token (%s); requested a new one.", exc.code)
            return self._xoauth2()

    def refuse_unsendable(self, *addresses: str) -> None:
        smtp.require_sendable("sender or recipient address", *addresses)

    def send(self, sender: str, recipients: Sequence[str], message: bytes, deadline: Deadline | None = None) -> str:
        """MAIL, RCPT and DATA; Exchange refuses a sender it may not send as only after DATA."""
        if self.connection is None:
            raise smtp.SmtpError("disconnected", "The connection to the mail server is closed.")
        return smtp.send_message(self.connection, self.host, sender, recipients, message, deadline or self.deadline)

    def closing(self, failed: bool) -> PlanStep:
        if self.connection is None:
            return PlanStep("quit", skip_reason=gettext("No connection was open."))
        if failed:
            self.close()
            return PlanStep("quit", skip_reason=gettext("Connection closed after the failure."))
        return PlanStep("quit", self.quit)

    def quit(self, deadline: Deadline | None = None) -> str:
        connection, self.connection = self.connection, None
        if connection is None:
            return ""
        return smtp.quit_session(connection, self.host, deadline or self.deadline)

    def close(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            smtp.close(connection)
