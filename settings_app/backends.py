"""The project's email backend: Django's SMTP backend sending with the saved settings.

``OutgoingEmailBackend`` reads the Outgoing Email settings each time it opens a
connection; explicit constructor arguments (host, port, username, password,
use_tls, use_ssl, timeout) win over them. It connects, upgrades TLS and
authenticates with the same functions as the connection test (settings_app.smtp,
settings_app.oauth through settings_app.token_cache, settings_app.tls), so there is
one way to authenticate. Microsoft 365 tokens come from the deployment-wide
token cache: one token request per token lifetime, not per message. With the
Microsoft Graph protocol the same plan machinery sends each message as MIME through
sendMail over one HTTPS session per batch; a 429's Retry-After is waited out when
the whole wait stays within RETRY_AFTER_LIMIT seconds.

Sender rules (Exchange refuses any other sender with SendAsDenied): mail sent
for a user (settings_app.mail.send_mail_as) comes From the user's address when
"Use user's email as sender" is on, else From the configured sender with
Reply-To the user; every other message has its envelope sender and From header
replaced by the configured sender.

Failures raise OutgoingEmailError (an smtplib.SMTPException, so an OSError, as
Django's SMTP backend raises) whose text carries the diagnosis code and title and
never a secret or token; ``fail_silently`` is respected as in Django.
"""

from __future__ import annotations

import copy
import logging
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.backends.smtp import EmailBackend
from django.core.mail.message import sanitize_address
from django.db import DatabaseError, transaction
from django.utils.functional import cached_property
from django.views.decorators.debug import sensitive_variables

from settings_app import metrics, token_cache
from settings_app.deadline import Deadline
from settings_app.diagnosis import diagnose
from settings_app.mail import on_behalf_of
from settings_app.models import ConnectionSecurity, OutgoingEmailSettings
from settings_app.smtp import SmtpError, SMTPException
from settings_app.tls import Trust, shared_trust, trust_context
from settings_app.transports import all_step_labels, transport_for
from settings_app.transports.smtp import SmtpPlan
from settings_app.values import ConnectionSettings, ProtocolError, Redactor

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
QUIT_TIMEOUT = 5.0
# The longest a send waits, in all, for what Retry-After asks (Microsoft Graph's 429); beyond it, it fails.
RETRY_AFTER_LIMIT = 30.0
_LABELS = {**all_step_labels(), "settings": "Read the outgoing email settings"}
# By credential kind: its name in "not configured" errors, and the encrypted field holding its secret.
CREDENTIAL_NAMES = {"secret": "client secret", "certificate": "certificate", "federated": "federated token file"}
CREDENTIAL_SECRETS = {"secret": "client_secret", "certificate": "certificate_key"}


class OutgoingEmailError(SMTPException):
    """Mail could not be sent.

    ``step`` is the failed step (a connection_test.STEPS name or ``"settings"``),
    ``code`` the stable code (``AADSTS7000215``, ``535-5.7.3``, ``disconnected``,
    ``not-configured``...), ``title`` the diagnosis title, ``reply`` the server's
    answer. None of them, nor the text, ever holds a secret or a token.
    """

    def __init__(
        self, step: str, code: str, title: str, detail: str = "", reply: str = "", *, retryable: bool = False
    ) -> None:
        self.step = step
        self.code = code
        self.title = title
        self.detail = detail
        self.reply = reply
        self.retryable = retryable
        text = f"{_LABELS.get(step, step)} failed [{code}]: {title}."
        if detail:
            text += f" {detail}"
        if reply and reply not in detail:
            text += f" Server reply: {reply}"
        super().__init__(text)

    def __reduce__(self):
        # Task queues pickle exceptions; OSError's own reduce would call __init__ with the text only.
        return (_rebuild_error, (self.step, self.code, self.title, self.detail, self.reply, self.retryable))


def _rebuild_error(step: str, code: str, title: str, detail: str, reply: str, retryable: bool) -> OutgoingEmailError:
    return OutgoingEmailError(step, code, title, detail, reply, retryable=retryable)


class OutgoingEmailBackend(EmailBackend):
    """Django's SMTP backend over the saved Outgoing Email settings.

    As in Django, ``open()`` returns True when it opened a connection, False when
    one was open, None when a failure passed silently; callers must call
    ``close()`` if (and only if) it returned True. One connection serves a whole
    batch; a message whose connection dropped (or got 421) is sent once more on a
    new connection, and earlier messages are never sent again.
    """

    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        username: str | None = None,
        password: str | None = None,
        use_tls: bool | None = None,
        fail_silently: bool = False,
        use_ssl: bool | None = None,
        timeout: float | None = None,
        ssl_keyfile: str | None = None,
        ssl_certfile: str | None = None,
        **kwargs,
    ) -> None:
        if use_tls and use_ssl:
            raise ValueError("use_tls and use_ssl are mutually exclusive; give at most one of them as True.")
        super().__init__(
            host=host,
            port=port,
            username=username,
            password=password,
            use_tls=use_tls,
            use_ssl=use_ssl,
            fail_silently=fail_silently,
            timeout=timeout,
            ssl_keyfile=ssl_keyfile,
            ssl_certfile=ssl_certfile,
            **kwargs,
        )
        self._explicit = {
            "host": host,
            "port": port,
            "username": username,
            "password": password,
            "use_tls": use_tls,
            "use_ssl": use_ssl,
        }
        if self.timeout is None:
            self.timeout = DEFAULT_TIMEOUT
        self._config: ConnectionSettings | None = None
        self._redactor = Redactor()
        self._authenticated_until: float | None = None

    @cached_property
    def _identity_trust(self) -> Trust:
        return shared_trust(settings.MAILADMIN_CA_BUNDLE)

    @cached_property
    def ssl_context(self) -> ssl.SSLContext:
        """The project's trust policy (MAILADMIN_CA_BUNDLE), plus the client certificate if given."""
        if not (self.ssl_certfile or self.ssl_keyfile):
            return self._identity_trust.context
        context = trust_context(settings.MAILADMIN_CA_BUNDLE)
        context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        return context

    def open(self) -> bool | None:
        """Ensure an authenticated connection (see the class docstring for the return value)."""
        if self.connection is not None:
            return False
        try:
            config = self._settings_or_error()
            self.connection = self._connect(config)
        except OutgoingEmailError:
            if not self.fail_silently:
                raise
            return None
        return True

    def _settings_or_error(self) -> ConnectionSettings:
        try:
            # A savepoint: a caller's transaction stays usable after the failure.
            with transaction.atomic():
                return self._load_settings()
        except DatabaseError as exc:
            # As a failure of the mail path, so that fail_silently holds for it too.
            raise OutgoingEmailError(
                "settings",
                "database-unavailable",
                "The outgoing email settings cannot be read",
                f"The database did not answer ({type(exc).__name__}).",
            ) from None

    @sensitive_variables()
    def _load_settings(self) -> ConnectionSettings:
        """The saved settings with the explicit constructor arguments applied; refuses unusable ones."""
        saved = OutgoingEmailSettings.load()
        explicit = self._explicit
        use_tls = saved.connection_security == ConnectionSecurity.STARTTLS
        use_ssl = saved.connection_security == ConnectionSecurity.SSL_TLS
        use_tls = use_tls if explicit["use_tls"] is None else explicit["use_tls"]
        use_ssl = use_ssl if explicit["use_ssl"] is None else explicit["use_ssl"]
        if use_tls and use_ssl:
            use_tls = explicit["use_tls"] is True
            use_ssl = not use_tls
        security = ConnectionSecurity.NONE
        if use_ssl or use_tls:
            security = ConnectionSecurity.SSL_TLS if use_ssl else ConnectionSecurity.STARTTLS
        overrides: dict = {"connection_security": security.value}
        for name, field in (("host", "server"), ("port", "port"), ("username", "username"), ("password", "password")):
            if explicit[name] is not None:
                overrides[field] = explicit[name]
        if explicit["username"] and explicit["password"]:
            overrides["use_secure_auth"] = True
        config = replace(saved.to_connection_settings(), **overrides)
        self._check_usable(config, saved.unreadable_secrets())
        self.host, self.port, self.username = config.server, config.port, config.username
        self.use_tls = config.connection_security == ConnectionSecurity.STARTTLS
        self.use_ssl = config.connection_security == ConnectionSecurity.SSL_TLS
        return config

    def _check_usable(self, config: ConnectionSettings, unreadable: list[str]) -> None:
        secret = ""
        transport = transport_for(config.protocol)
        if transport.uses_oauth:
            needed = {
                "server": config.server,
                "username": config.username,
                "client ID": config.client_id,
                "tenant ID": config.tenant_id,
                CREDENTIAL_NAMES[config.credential.kind]: config.credential,
            }
            if not getattr(transport, "needs_server", True):
                del needed["server"]
            secret = CREDENTIAL_SECRETS.get(config.credential.kind, "")
        else:
            needed = {"server": config.server}
            if config.use_secure_auth:
                needed.update({"username": config.username, "password": config.password})
                if self._explicit["password"] is None:
                    secret = "password"
        if secret in unreadable:
            name = secret.replace("_", " ")
            raise OutgoingEmailError(
                "settings",
                "secret-unreadable",
                f"The saved {name} can no longer be decrypted",
                f"It does not decrypt with MAILADMIN_ENCRYPTION_KEYS: restore the old key or enter the {name} "
                "again on the Outgoing Email settings page.",
            )
        missing = [name for name, value in needed.items() if not value]
        if missing:
            raise OutgoingEmailError(
                "settings",
                "not-configured",
                "Outgoing email is not configured",
                f"Fill in {', '.join(missing)} on the Outgoing Email settings page.",
            )

    @sensitive_variables()
    def _connect(self, config: ConnectionSettings) -> SmtpPlan:
        """A session through the transport's plan that is ready to send; remembers ``config``."""
        transport = transport_for(config.protocol)
        trust = Trust(self.ssl_context, settings.MAILADMIN_CA_BUNDLE)
        provider = transport.token_provider(config, self._identity_trust)
        redactor = Redactor(*config.redactions())
        plan = transport.plan(
            config,
            deadline=Deadline(self.timeout),
            trust=trust,
            tokens=token_cache.CachedTokens(provider) if provider is not None else None,
            redactor=redactor,
        )
        try:
            for planned in plan.opening():
                if planned.action is not None:
                    with self._failure(planned.name, config, redactor):
                        planned.action()
        except OutgoingEmailError:
            plan.close()
            raise
        token = getattr(plan, "token", None)
        self._authenticated_until = time.monotonic() + token.expires_in if token is not None else None
        self._config = config
        self._redactor = redactor
        return plan

    def close(self) -> None:
        """Say QUIT; a failure here loses no mail, so it never raises."""
        plan, self.connection = self.connection, None
        if plan is not None:
            with suppress(ProtocolError):
                plan.quit(Deadline(min(self.timeout, QUIT_TIMEOUT)))
            plan.close()

    @property
    def _transport_name(self) -> str:
        return transport_for(self._config.protocol).name if self._config is not None else "smtp"

    def _send(self, email_message: EmailMessage) -> bool:
        if not email_message.recipients():
            return False
        try:
            metrics.count_delivery(self._transport_name, self._deliver, email_message)
        except OutgoingEmailError:
            if not self.fail_silently:
                raise
            return False
        return True

    def _deliver(self, email_message: EmailMessage) -> None:
        if self._config is None:
            raise OutgoingEmailError("send", "disconnected", "Not connected", "Call open() before sending.")
        if self._authenticated_until is not None and time.monotonic() >= self._authenticated_until:
            self._reconnect()
        try:
            self._transmit(email_message)
            return
        except OutgoingEmailError as exc:
            if not self._worth_a_retry(exc):
                raise
            logger.warning("The mail server ended the session (%s); sending the message again.", exc.code)
        self._reconnect()
        self._transmit(email_message)

    def _worth_a_retry(self, exc: OutgoingEmailError) -> bool:
        """The server hung up or answered 421, or (530) no longer counts an authenticated session."""
        config = self._config
        authenticated = config is not None and (transport_for(config.protocol).uses_oauth or config.use_secure_auth)
        return exc.retryable or (authenticated and exc.code.startswith("530"))

    def _reconnect(self) -> None:
        config = self._config
        assert config is not None
        self.close()
        self.connection = self._connect(config)

    def _transmit(self, email_message: EmailMessage) -> None:
        config = self._config
        assert config is not None
        sender, recipients, data = self._envelope(email_message, config)
        with self._failure("send", config, self._redactor):
            if self.connection is None:
                raise SmtpError("disconnected", "The connection to the mail server is closed.")
            self._send_within_retry_after(sender, recipients, data)

    def _send_within_retry_after(self, sender: str, recipients: list[str], data: bytes) -> None:
        """Send; when the server asks to retry later (``retry_after``), wait and send again,
        as long as the waits add up to at most RETRY_AFTER_LIMIT seconds."""
        waited = 0.0
        while True:
            try:
                self.connection.send(sender, recipients, data, Deadline(self.timeout))
                return
            except ProtocolError as exc:
                wait = getattr(exc, "retry_after", None)
                if wait is None or waited + wait > RETRY_AFTER_LIMIT:
                    raise
            logger.warning("The mail service asked to retry in %s s; waiting before sending again.", wait)
            time.sleep(wait)
            waited += wait

    @staticmethod
    def _envelope(email_message: EmailMessage, config: ConnectionSettings) -> tuple[str, list[str], bytes]:
        """Envelope sender, recipients and bytes of ``email_message`` under the sender rules."""
        encoding = email_message.encoding or settings.DEFAULT_CHARSET
        user = on_behalf_of(email_message)
        as_user = bool(user) and config.use_user_email_as_sender
        configured = config.sender_email or (config.username if "@" in config.username else "")
        outgoing = copy.copy(email_message)
        headers = dict(email_message.extra_headers)
        sender = user if as_user else configured
        if sender:
            outgoing.from_email = sender
            headers = {name: value for name, value in headers.items() if name.lower() != "from"}
        if user and not as_user:
            outgoing.reply_to = [user]
            headers = {name: value for name, value in headers.items() if name.lower() != "reply-to"}
        outgoing.extra_headers = headers
        recipients = [sanitize_address(address, encoding) for address in email_message.recipients()]
        return sanitize_address(outgoing.from_email, encoding), recipients, outgoing.message().as_bytes(linesep="\r\n")

    @contextmanager
    def _failure(self, step: str, config: ConnectionSettings, redactor: Redactor) -> Iterator[None]:
        try:
            yield
        except ProtocolError as exc:
            reply = redactor.redact(exc.reply)
            finding = diagnose(step, exc.code, reply, config)
            error = OutgoingEmailError(
                step, exc.code, finding.title, redactor.redact(exc.message), reply, retryable=exc.retryable
            )
        else:
            return
        # Raised outside the except block: the protocol error's context may hold a request body.
        raise error
