"""The connection test behind "Save and test", the command and the email backend's checks.

Plain Python in and out: a ConnectionSettings goes in, a ConnectionTestResult with one
StepResult per step, in the order of STEPS, comes out. Expected failures never raise.
"""

from __future__ import annotations

import base64
import datetime
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from django.conf import settings as django_settings
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from settings_app import oauth, smtp
from settings_app.clouds import CLOUDS, DEFAULT_CLOUD
from settings_app.deadline import Deadline
from settings_app.diagnosis import Finding, diagnose
from settings_app.tls import trust_context

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
SHOWN_CLAIMS = ("aud", "tid", "appid", "roles", "exp")


@dataclass(frozen=True)
class ConnectionSettings:
    protocol: str
    server: str
    port: int
    connection_security: str
    use_secure_auth: bool
    username: str
    sender_email: str
    use_user_email_as_sender: bool = False
    client_id: str = ""
    tenant_id: str = ""
    cloud: str = DEFAULT_CLOUD
    password: str = field(default="", repr=False)
    client_secret: str = field(default="", repr=False)

    @property
    def is_microsoft365(self) -> bool:
        return self.protocol == "smtp_microsoft365"


@dataclass
class StepResult:
    name: str
    status: str = "skipped"
    elapsed_ms: int = 0
    reply: str = ""
    detail: str = ""
    code: str = ""
    warnings: list[str] = field(default_factory=list)
    finding: Finding | None = None

    @property
    def label(self) -> str:
        """In the active language."""
        return str(STEP_LABELS[self.name])

    def as_dict(self) -> dict:
        data = asdict(self)
        data["label"] = self.label
        data["finding"] = self.finding.as_dict() if self.finding else None
        return data


@dataclass
class ConnectionTestResult:
    steps: list[StepResult]
    duration_ms: int
    token_claims: dict = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        return "failure" if self.failed_step else "success"

    @property
    def failed_step(self) -> StepResult | None:
        return next((step for step in self.steps if step.status == "failed"), None)

    def as_dict(self) -> dict:
        return {
            "outcome": self.outcome,
            "duration_ms": self.duration_ms,
            "steps": [step.as_dict() for step in self.steps],
            "token_claims": self.token_claims,
        }


class _Run:
    """Runs steps in order; after the first failure the rest are skipped."""

    def __init__(self, config: ConnectionSettings, secrets: list[str], on_step: Callable | None) -> None:
        self.config = config
        self.steps = {name: StepResult(name) for name in STEPS}
        self.failed = False
        self._secrets = secrets
        self._on_step = on_step

    def skip(self, name: str, why: str) -> None:
        self.steps[name].detail = why
        self._report(self.steps[name])

    def run(self, name: str, action: Callable[[], str]) -> bool:
        step = self.steps[name]
        if self.failed:
            step.detail = gettext("Not run: an earlier step failed.")
            self._report(step)
            return False
        started = time.monotonic()
        try:
            step.reply = self._redact(action())
            step.status = "ok"
        except (smtp.SmtpError, oauth.TokenError) as exc:
            self.failed = True
            step.status = "failed"
            step.code = exc.code
            step.detail = self._redact(exc.message)
            step.reply = self._redact(exc.reply)
            step.finding = diagnose(name, exc.code, step.reply, self.config)
        step.elapsed_ms = round((time.monotonic() - started) * 1000)
        self._report(step)
        return step.status == "ok"

    def _report(self, step: StepResult) -> None:
        if self._on_step is not None:
            self._on_step(step)

    def add_secret(self, value: str) -> None:
        if value:
            self._secrets.append(value)

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret:
                text = text.replace(secret, "[redacted]")
        return text


def _test_message(config: ConnectionSettings, sender: str, recipient: str) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = gettext("mailadmin test message")
    message["Date"] = format_datetime(timezone.now())
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message.set_content(
        gettext("This message was sent by the connection test of the outgoing email settings.")
        + "\n"
        + gettext("Server: %(server)s:%(port)s") % {"server": config.server, "port": config.port}
        + "\n"
    )
    return message.as_bytes()


def token_warnings(claims: dict, audience: str) -> list[str]:
    """What in a token's claims will make Exchange answer 535 5.7.3."""
    warnings = []
    if claims.get("aud") not in (audience, audience + "/", "00000002-0000-0ff1-ce00-000000000000"):
        warnings.append(
            gettext("The token's audience is %(actual)s, not Exchange Online (%(audience)s): Exchange will refuse it.")
            % {"actual": repr(claims.get("aud")), "audience": audience}
        )
    if EXCHANGE_ROLE not in (claims.get("roles") or []):
        warnings.append(
            gettext(
                "The token carries no %(role)s role: add the application permission "
                "Office 365 Exchange Online > %(role)s and grant admin consent "
                "(not needed only if you use Exchange App RBAC)."
            )
            % {"role": EXCHANGE_ROLE}
        )
    return warnings


def authority_host_for(cloud: str) -> str:
    return django_settings.MAILADMIN_AUTHORITY_HOST or CLOUDS[cloud].authority_host


def run_connection_test(
    config: ConnectionSettings,
    *,
    test_recipient: str = "",
    send_as: str = "",
    timeout: float | None = None,
    on_step: Callable[[StepResult], None] | None = None,
) -> ConnectionTestResult:
    """Run every step against the real servers within ``timeout`` seconds (default
    MAILADMIN_TEST_TIMEOUT). Microsoft 365 always gets a fresh token from Entra ID.

    With ``test_recipient`` a message is sent from the sender address; with
    ``use_user_email_as_sender`` on, a second one from ``send_as`` (the testing
    administrator's address), so that a missing Send As right shows up here and not
    in production. ``on_step`` is called with each step as it completes.
    """
    started = time.monotonic()
    deadline = Deadline(timeout or django_settings.MAILADMIN_TEST_TIMEOUT)
    run = _Run(config, [config.password, config.client_secret], on_step)
    ssl_context = trust_context(django_settings.MAILADMIN_CA_BUNDLE)
    host, security = config.server, config.connection_security
    cloud = CLOUDS.get(config.cloud, CLOUDS[DEFAULT_CLOUD])
    claims: dict = {}
    state: dict = {}

    def do_dns() -> str:
        state["addresses"] = smtp.resolve(host, config.port, deadline)
        return ", ".join(sorted({address[4][0] for address in state["addresses"]}))

    def do_connect() -> str:
        state["connection"], banner = smtp.open_connection(
            host,
            config.port,
            state["addresses"],
            implicit_tls=security == "ssl_tls",
            ssl_context=ssl_context,
            deadline=deadline,
        )
        return banner

    def do_token() -> str:
        token = oauth.acquire_token(
            client_id=config.client_id,
            tenant_id=config.tenant_id,
            client_secret=config.client_secret,
            authority_host=authority_host_for(config.cloud),
            scope=cloud.scope,
            deadline=deadline,
            ssl_context=ssl_context,
            ca_bundle=django_settings.MAILADMIN_CA_BUNDLE,
        )
        state["token"] = token.value
        run.add_secret(token.value)
        sasl = f"user={config.username}\x01auth=Bearer {token.value}\x01\x01"
        run.add_secret(base64.b64encode(sasl.encode()).decode())
        full_claims = oauth.token_claims(token.value)
        claims.update({name: full_claims[name] for name in SHOWN_CLAIMS if name in full_claims})
        if isinstance(claims.get("exp"), int):
            claims["exp"] = datetime.datetime.fromtimestamp(claims["exp"], datetime.UTC).isoformat()
        run.steps["token"].warnings = token_warnings(full_claims, cloud.token_audience)
        return gettext("Token issued, valid for %(seconds)s s.") % {"seconds": token.expires_in}

    def do_auth() -> str:
        if config.is_microsoft365:
            return smtp.authenticate_xoauth2(state["connection"], host, config.username, state["token"], deadline)
        return smtp.authenticate_password(state["connection"], host, config.username, config.password, deadline)

    def send_from(sender: str) -> Callable[[], str]:
        def send() -> str:
            # Before the message is built: email raises outside any step on such addresses.
            smtp.require_sendable("sender or recipient address", sender, test_recipient)
            message = _test_message(config, sender, test_recipient)
            return smtp.send_message(state["connection"], host, sender, [test_recipient], message, deadline)

        return send

    try:
        run.run("dns", do_dns)
        run.run("connect", do_connect)
        run.run("ehlo", lambda: smtp.ehlo(state["connection"], host, deadline))
        if security == "starttls":
            run.run("starttls", lambda: smtp.starttls(state["connection"], host, ssl_context, deadline))
            run.run("ehlo_tls", lambda: smtp.ehlo(state["connection"], host, deadline))
        else:
            why = (
                gettext("The connection is already encrypted (SSL/TLS).")
                if security == "ssl_tls"
                else gettext("Connection security is None: the connection is not encrypted.")
            )
            run.skip("starttls", why)
            run.skip("ehlo_tls", why)
        if config.is_microsoft365:
            run.run("token", do_token)
        else:
            run.skip("token", gettext("Plain SMTP does not use OAuth 2.0."))
        if config.is_microsoft365 or config.use_secure_auth:
            run.run("auth", do_auth)
        else:
            run.skip("auth", gettext("Secure authentication is off."))
        if test_recipient:
            run.run("send", send_from(config.sender_email))
        else:
            run.skip("send", gettext("No test recipient was given."))
        if not config.use_user_email_as_sender:
            run.skip("send_as", gettext("'Use user's email as sender' is off."))
        elif not test_recipient:
            run.skip("send_as", gettext("No test recipient was given."))
        elif not send_as:
            run.skip("send_as", gettext("Your account has no email address to send as."))
        else:
            run.run("send_as", send_from(send_as))
        if "connection" in state:
            if run.failed:
                smtp.close(state["connection"])
                run.skip("quit", gettext("Connection closed after the failure."))
            else:
                run.run("quit", lambda: smtp.quit_session(state["connection"], host, deadline))
        else:
            run.skip("quit", gettext("No connection was open."))
    finally:
        if "connection" in state:
            smtp.close(state["connection"])
    return ConnectionTestResult(
        steps=[run.steps[name] for name in STEPS],
        duration_ms=round((time.monotonic() - started) * 1000),
        token_claims=claims,
    )
