"""The project's email backend: Django's SMTP backend sending with the saved settings.

``OutgoingEmailBackend`` reads the Outgoing Email settings each time it opens a
connection; explicit constructor arguments (host, port, username, password,
use_tls, use_ssl, timeout) win over them. It connects, upgrades TLS and
authenticates with the same functions as the connection test (settings_app.smtp,
settings_app.oauth through settings_app.token_cache, settings_app.tls), so there is
one way to authenticate. Microsoft 365 tokens come from the deployment-wide
token cache: one token request per token lifetime, not per message.

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

import base64
import copy
import logging
import smtplib
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.backends.smtp import EmailBackend
from django.core.mail.message import sanitize_address
from django.utils.functional import cached_property

from settings_app import metrics, oauth, smtp, token_cache
from settings_app.connection_test import STEP_LABELS, ConnectionSettings
from settings_app.deadline import Deadline
from settings_app.diagnosis import diagnose
from settings_app.mail import on_behalf_of
from settings_app.models import ConnectionSecurity, OutgoingEmailSettings
from settings_app.tls import trust_context

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
QUIT_TIMEOUT = 5.0
# Replies after which the message in flight is sent again on a new connection: the
# server hung up (421, or no reply at all) or no longer counts an authenticated
# session as authenticated (530). None of them means the message was accepted.
_RETRY_CODES = ("disconnected", "421", "530")
_LABELS = {**STEP_LABELS, "settings": "Read the outgoing email settings"}


class OutgoingEmailError(smtplib.SMTPException):
    """Mail could not be sent.

    ``step`` is the failed step (a connection_test.STEPS name or ``"settings"``),
    ``code`` the stable code (``AADSTS7000215``, ``535-5.7.3``, ``disconnected``,
    ``not-configured``...), ``title`` the diagnosis title, ``reply`` the server's
    answer. None of them, nor the text, ever holds a secret or a token.
    """

    def __init__(self, step: str, code: str, title: str, detail: str = "", reply: str = "") -> None:
        self.step = step
        self.code = code
        self.title = title
        self.detail = detail
        self.reply = reply
        text = f"{_LABELS.get(step, step)} failed [{code}]: {title}."
        if detail:
            text += f" {detail}"
        if reply and reply not in detail:
            text += f" Server reply: {reply}"
        super().__init__(text)

    def __reduce__(self):
        # Task queues pickle exceptions; OSError's own reduce would call __init__ with the text only.
        return (self.__class__, (self.step, self.code, self.title, self.detail, self.reply))


class _Secrets:
    """Values that must never reach an exception's text."""

    def __init__(self, *values: str) -> None:
        self._values = [value for value in values if value]

    def add(self, *values: str) -> None:
        self._values.extend(value for value in values if value)

    def redact(self, text: str) -> str:
        for value in self._values:
            text = text.replace(value, "[redacted]")
        return text


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
        self._secrets = _Secrets()
        self._authenticated_until: float | None = None

    @cached_property
    def ssl_context(self) -> ssl.SSLContext:
        """The project's trust policy (MAILADMIN_CA_BUNDLE), plus the client certificate if given."""
        context = trust_context(settings.MAILADMIN_CA_BUNDLE)
        if self.ssl_certfile or self.ssl_keyfile:
            context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        return context

    @cached_property
    def _identity_context(self) -> ssl.SSLContext:
        return trust_context(settings.MAILADMIN_CA_BUNDLE)

    def open(self) -> bool | None:
        """Ensure an authenticated connection (see the class docstring for the return value)."""
        if self.connection is not None:
            return False
        try:
            config = self._load_settings()
            self.connection = self._connect(config)
        except OutgoingEmailError:
            if not self.fail_silently:
                raise
            return None
        return True

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
        if config.is_microsoft365:
            needed = {
                "server": config.server,
                "username": config.username,
                "client ID": config.client_id,
                "tenant ID": config.tenant_id,
                "client secret": config.client_secret,
            }
            secret = "client_secret"
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

    def _connect(self, config: ConnectionSettings) -> smtplib.SMTP:
        """A connection that is ready for MAIL FROM; remembers ``config`` for the sender rules."""
        deadline = Deadline(self.timeout)
        secrets = _Secrets(config.password, config.client_secret)
        host = config.server
        with self._failure("dns", config, secrets):
            addresses = smtp.resolve(host, config.port, deadline)
        with self._failure("connect", config, secrets):
            connection, _ = smtp.open_connection(
                host,
                config.port,
                addresses,
                implicit_tls=config.connection_security == ConnectionSecurity.SSL_TLS,
                ssl_context=self.ssl_context,
                deadline=deadline,
            )
        try:
            with self._failure("ehlo", config, secrets):
                smtp.ehlo(connection, host, deadline)
            if config.connection_security == ConnectionSecurity.STARTTLS:
                with self._failure("starttls", config, secrets):
                    smtp.starttls(connection, host, self.ssl_context, deadline)
                with self._failure("ehlo_tls", config, secrets):
                    smtp.ehlo(connection, host, deadline)
            self._authenticated_until = self._authenticate(connection, config, deadline, secrets)
        except OutgoingEmailError:
            smtp.close(connection)
            raise
        self._config = config
        self._secrets = secrets
        return connection

    def _authenticate(
        self, connection: smtplib.SMTP, config: ConnectionSettings, deadline: Deadline, secrets: _Secrets
    ) -> float | None:
        """AUTH as the settings say; returns when (time.monotonic) the token used expires, if any."""
        host = config.server
        if not config.is_microsoft365:
            if config.use_secure_auth:
                with self._failure("auth", config, secrets):
                    smtp.authenticate_password(connection, host, config.username, config.password, deadline)
            return None
        source = token_cache.TokenSource.of(
            cloud=config.cloud,
            tenant_id=config.tenant_id,
            client_id=config.client_id,
            client_secret=config.client_secret,
        )
        token = self._token(source, config, deadline, secrets)
        try:
            smtp.authenticate_xoauth2(connection, host, config.username, token.value, deadline)
        except smtp.SmtpError as exc:
            if token.source != "cache" or exc.code != "535-5.7.3":
                raise self._error("auth", exc, config, secrets) from None
            # A cached token Exchange no longer accepts (revoked, or the app's grants
            # changed): forget it and try once with a fresh one.
            logger.warning("Exchange refused the cached access token (%s); requesting a new one.", exc.code)
            token_cache.forget(source)
            token = self._token(source, config, deadline, secrets)
            with self._failure("auth", config, secrets):
                smtp.authenticate_xoauth2(connection, host, config.username, token.value, deadline)
        return time.monotonic() + token.expires_in

    def _token(
        self, source: token_cache.TokenSource, config: ConnectionSettings, deadline: Deadline, secrets: _Secrets
    ) -> oauth.AccessToken:
        with self._failure("token", config, secrets):
            token = token_cache.get_token(
                source,
                deadline=deadline,
                ssl_context=self._identity_context,
                ca_bundle=settings.MAILADMIN_CA_BUNDLE,
            )
        sasl = f"user={config.username}\x01auth=Bearer {token.value}\x01\x01"
        secrets.add(token.value, base64.b64encode(sasl.encode()).decode())
        return token

    def _close_connection(self, connection: smtplib.SMTP) -> None:
        """Say QUIT; a failure here loses no mail, so it never raises."""
        host = self._config.server if self._config is not None else ""
        with suppress(smtp.SmtpError):
            smtp.quit_session(connection, host, Deadline(min(self.timeout, QUIT_TIMEOUT)))

    def _send(self, email_message: EmailMessage) -> bool:
        if not email_message.recipients():
            return False
        try:
            metrics.count_delivery("smtp", self._deliver, email_message)
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
            if not self._worth_a_retry(exc.code):
                raise
            logger.warning("The mail server ended the session (%s); sending the message again.", exc.code)
        self._reconnect()
        self._transmit(email_message)

    def _worth_a_retry(self, code: str) -> bool:
        config = self._config
        authenticated = config is not None and (config.is_microsoft365 or config.use_secure_auth)
        return code.startswith(_RETRY_CODES) and (authenticated or not code.startswith("530"))

    def _reconnect(self) -> None:
        config = self._config
        assert config is not None
        connection, self.connection = self.connection, None
        if connection is not None:
            self._close_connection(connection)
        self.connection = self._connect(config)

    def _transmit(self, email_message: EmailMessage) -> None:
        config = self._config
        assert config is not None
        sender, recipients, data = self._envelope(email_message, config)
        with self._failure("send", config, self._secrets):
            if self.connection is None:
                raise smtp.SmtpError("disconnected", "The connection to the mail server is closed.")
            smtp.send_message(self.connection, config.server, sender, recipients, data, Deadline(self.timeout))

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
    def _failure(self, step: str, config: ConnectionSettings, secrets: _Secrets) -> Iterator[None]:
        try:
            yield
        except (smtp.SmtpError, oauth.TokenError) as exc:
            raise self._error(step, exc, config, secrets) from None

    @staticmethod
    def _error(
        step: str, exc: smtp.SmtpError | oauth.TokenError, config: ConnectionSettings, secrets: _Secrets
    ) -> OutgoingEmailError:
        reply = secrets.redact(exc.reply)
        finding = diagnose(step, exc.code, reply, config)
        return OutgoingEmailError(step, exc.code, finding.title, secrets.redact(exc.message), reply)
