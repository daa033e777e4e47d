from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from settings_app import certificates
from settings_app.clouds import CLOUDS, DEFAULT_CLOUD, MICROSOFT365_PORT
from settings_app.fields import EncryptedTextField, UnreadableSecret
from settings_app.transports import Transport, transport_for
from settings_app.validators import (
    validate_ascii,
    validate_guid,
    validate_no_control_characters,
    validate_server,
    validate_tenant,
)
from settings_app.values import (
    CertificateCredential,
    ClientSecret,
    ConnectionSettings,
    Credential,
    FederatedAssertion,
)

SECRET_EXPIRY_WARNINGS = (7, 14, 30)


@dataclass(frozen=True)
class SecretExpiry:
    expires_on: datetime.date
    days_left: int

    @property
    def expired(self) -> bool:
        return self.days_left < 0


@dataclass(frozen=True)
class CredentialExpiry:
    """When the credential in use ends. ``credential`` is "client_secret" or "certificate" (the
    metrics' label and the alerts' key); ``ends_at`` is the exact moment (a secret: its day's start, UTC)."""

    credential: str
    expires_on: datetime.date
    ends_at: datetime.datetime
    thumbprint: str = ""


def _expiry(expires_on: datetime.date | None, today: datetime.date) -> SecretExpiry | None:
    """An expiry worth a warning: within SECRET_EXPIRY_WARNINGS days, or past."""
    if expires_on is None:
        return None
    days_left = (expires_on - today).days
    if days_left > max(SECRET_EXPIRY_WARNINGS):
        return None
    return SecretExpiry(expires_on, days_left)


class Protocol(models.TextChoices):
    SMTP = "smtp", "SMTP"
    MICROSOFT365 = "smtp_microsoft365", "SMTP Microsoft 365"
    GRAPH = "graph_microsoft365", "Microsoft 365 (Graph API)"


class CredentialType(models.TextChoices):
    SECRET = "secret", _("Client secret")
    CERTIFICATE = "certificate", _("Certificate (recommended)")
    FEDERATED = "federated", _("Federated credential (workload identity)")


class ConnectionSecurity(models.TextChoices):
    NONE = "none", _("None")
    STARTTLS = "starttls", "STARTTLS"
    SSL_TLS = "ssl_tls", _("SSL/TLS (implicit TLS)")


class WebhookKind(models.TextChoices):
    JSON = "json", _("Generic JSON webhook")
    TEAMS = "teams", _("Microsoft Teams (Workflows webhook)")
    SLACK = "slack", _("Slack (incoming webhook)")


class OutgoingEmailSettings(models.Model):
    """The single outgoing-email configuration of the product (always pk=1)."""

    SINGLETON_PK = 1
    # What the settings page edits, in page order; SECRET_FIELDS are write-only there.
    EDITABLE_FIELDS = (
        "protocol",
        "cloud",
        "server",
        "port",
        "connection_security",
        "use_secure_auth",
        "username",
        "password",
        "sender_email",
        "use_user_email_as_sender",
        "client_id",
        "tenant_id",
        "credential_type",
        "client_secret",
        "client_secret_expires_on",
        "alert_webhook_kind",
        "alert_webhook_url",
    )
    SECRET_FIELDS = ("password", "client_secret", "alert_webhook_url")
    # Set by generating or uploading a certificate, never typed; the audit log names each by thumbprint.
    CERTIFICATE_FIELDS = ("certificate_thumbprint", "pending_certificate_thumbprint")
    AUDITED_FIELDS = EDITABLE_FIELDS + CERTIFICATE_FIELDS

    protocol = models.CharField(_("protocol"), max_length=32, choices=Protocol.choices, default=Protocol.MICROSOFT365)
    cloud = models.CharField(
        _("Microsoft cloud"),
        max_length=16,
        choices=[(key, cloud.label) for key, cloud in CLOUDS.items()],
        default=DEFAULT_CLOUD,
    )
    server = models.CharField(
        _("server"),
        max_length=253,
        blank=True,
        default=CLOUDS[DEFAULT_CLOUD].smtp_host,
        validators=[validate_no_control_characters, validate_server],
    )
    port = models.PositiveIntegerField(
        _("port"), default=MICROSOFT365_PORT, validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )
    connection_security = models.CharField(
        _("connection security"), max_length=16, choices=ConnectionSecurity.choices, default=ConnectionSecurity.STARTTLS
    )
    use_secure_auth = models.BooleanField(_("Use secure authentication"), default=True)
    username = models.CharField(
        _("username"), max_length=254, blank=True, validators=[validate_no_control_characters, validate_ascii]
    )
    password = EncryptedTextField(_("password"), blank=True)
    sender_email = models.EmailField(_("Sender email"), blank=True, validators=[validate_ascii])
    use_user_email_as_sender = models.BooleanField(_("Use user's email as sender"), default=False)
    client_id = models.CharField(_("Client ID"), max_length=36, blank=True, validators=[validate_guid])
    tenant_id = models.CharField(
        _("Tenant ID"), max_length=253, blank=True, validators=[validate_no_control_characters, validate_tenant]
    )
    credential_type = models.CharField(
        _("credential"), max_length=16, choices=CredentialType.choices, default=CredentialType.SECRET
    )
    client_secret = EncryptedTextField(_("client secret"), blank=True)
    client_secret_expires_on = models.DateField(
        _("Secret expires on"),
        null=True,
        blank=True,
        help_text=_(
            "Optional: the expiry shown next to the secret in Certificates & secrets; the page warns ahead."
        ),
    )
    # Such URLs carry their own secret (Teams' sig=, Slack's path): encrypted and write-only like the others.
    alert_webhook_url = EncryptedTextField(_("alert webhook URL"), blank=True)
    alert_webhook_kind = models.CharField(
        _("alert webhook kind"), max_length=8, choices=WebhookKind.choices, default=WebhookKind.JSON
    )
    # The certificate in use (PEM) and its private key (PKCS#8 PEM, encrypted like the secrets).
    certificate = models.TextField(_("certificate"), blank=True, default="")
    certificate_key = EncryptedTextField(_("certificate private key"), blank=True)
    certificate_thumbprint = models.CharField(_("certificate thumbprint"), max_length=40, blank=True, default="")
    # A new certificate waiting for a passing Save and test before it replaces the one in use.
    pending_certificate = models.TextField(_("pending certificate"), blank=True, default="")
    pending_certificate_key = EncryptedTextField(_("pending certificate private key"), blank=True)
    pending_certificate_thumbprint = models.CharField(
        _("pending certificate thumbprint"), max_length=40, blank=True, default=""
    )

    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("updated by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Incremented by every save; a form posted against an older version was edited concurrently.
    version = models.PositiveIntegerField(_("version"), default=0, editable=False)

    class Meta:
        verbose_name = _("outgoing email settings")
        verbose_name_plural = _("outgoing email settings")

    def __str__(self) -> str:
        return gettext("Outgoing email settings")

    def save(self, *args, **kwargs) -> None:
        self.pk = self.SINGLETON_PK
        self.version += 1
        super().save(*args, **kwargs)

    @classmethod
    def load(cls) -> OutgoingEmailSettings:
        obj, _ = cls.objects.get_or_create(pk=cls.SINGLETON_PK)
        return obj

    @property
    def transport(self) -> Transport:
        return transport_for(self.protocol)

    @property
    def uses_entra_id(self) -> bool:
        """Whether the protocol authenticates with a token from Microsoft Entra ID."""
        return self.transport.uses_oauth

    def secret_expiry(self, today: datetime.date) -> SecretExpiry | None:
        """How close the client secret is to its expiry, when that is worth a warning."""
        if not self.uses_entra_id or self.credential_type != CredentialType.SECRET:
            return None
        return _expiry(self.client_secret_expires_on, today)

    def certificate_expiry(self, today: datetime.date) -> SecretExpiry | None:
        """How close the certificate in use is to its expiry (read from the certificate itself)."""
        info = self._certificate_in_use()
        return _expiry(info.not_after.date(), today) if info else None

    def _certificate_in_use(self) -> certificates.CertificateInfo | None:
        """The active certificate, when it is the credential in use and readable."""
        if not self.uses_entra_id or self.credential_type != CredentialType.CERTIFICATE or not self.certificate:
            return None
        try:
            return certificates.describe(self.certificate)
        except certificates.CertificateProblem:
            return None

    def credential_expiry(self) -> CredentialExpiry | None:
        """The end of the credential in use, for the monitor and the metrics: the client secret's
        "Secret expires on" (as the administrator entered it) or the active certificate's notAfter;
        None for the federated credential (its assertions are short-lived) or when none is known."""
        info = self._certificate_in_use()
        if info is not None:
            return CredentialExpiry("certificate", info.not_after.date(), info.not_after, info.thumbprint)
        if self.uses_entra_id and self.credential_type == CredentialType.SECRET and self.client_secret_expires_on:
            day = self.client_secret_expires_on
            start = datetime.datetime.combine(day, datetime.time(), tzinfo=datetime.UTC)
            return CredentialExpiry("client_secret", day, start)
        return None

    def unreadable_secrets(self) -> list[str]:
        """Names of secret fields whose stored value no configured key decrypts."""
        names = ("password", "client_secret", "certificate_key", "pending_certificate_key")
        return [name for name in names if isinstance(getattr(self, name), UnreadableSecret)]

    def _certificate_credential(self, pending: bool) -> CertificateCredential:
        prefix = "pending_" if pending else ""
        pem, key = getattr(self, f"{prefix}certificate"), getattr(self, f"{prefix}certificate_key")
        if not pem or not isinstance(key, str) or not key:
            return CertificateCredential()
        try:
            info = certificates.describe(pem)
        except certificates.CertificateProblem:
            return CertificateCredential()
        return CertificateCredential(
            private_key=key, certificate=pem, thumbprint=info.thumbprint, not_after=info.not_after
        )

    def credential(self, *, pending: bool = False) -> Credential:
        """The credential of ``credential_type``; with ``pending``, the pending certificate if there is one."""
        if self.credential_type == CredentialType.CERTIFICATE:
            return self._certificate_credential(pending and bool(self.pending_certificate))
        if self.credential_type == CredentialType.FEDERATED:
            return FederatedAssertion(settings.MAILADMIN_FEDERATED_TOKEN_FILE)
        return ClientSecret(self.client_secret if isinstance(self.client_secret, str) else "")

    def to_connection_settings(self, *, pending: bool = False) -> ConnectionSettings:
        """What a connection needs; ``pending`` tries the pending certificate (Save and test of a rotation)."""
        return ConnectionSettings(
            protocol=self.protocol,
            server=self.server,
            port=self.port,
            connection_security=self.connection_security,
            use_secure_auth=self.use_secure_auth,
            username=self.username,
            password=self.password if isinstance(self.password, str) else "",
            sender_email=self.sender_email,
            use_user_email_as_sender=self.use_user_email_as_sender,
            client_id=self.client_id,
            tenant_id=self.tenant_id,
            credential=self.credential(pending=pending),
            cloud=self.cloud,
        )


class StepStatus(models.TextChoices):
    OK = "ok", pgettext_lazy("step status", "ok")
    FAILED = "failed", pgettext_lazy("step status", "failed")
    SKIPPED = "skipped", pgettext_lazy("step status", "skipped")


class Outcome(models.TextChoices):
    SUCCESS = "success", _("passed")
    FAILURE = "failure", pgettext_lazy("step status", "failed")
    # Reserved before a test starts (settings_app.admission), completed when it ends.
    RUNNING = "running", pgettext_lazy("test outcome", "running")
    # The test itself crashed (a bug, not a failed step): nothing was recorded but this.
    ERROR = "error", pgettext_lazy("test outcome", "error")


class Trigger(models.TextChoices):
    PAGE = "page", pgettext_lazy("test trigger", "page")
    COMMAND = "command", pgettext_lazy("test trigger", "command")
    SCHEDULE = "schedule", pgettext_lazy("test trigger", "schedule")


class ConnectionTestRun(models.Model):
    """One run of the connection test: who, when, and each step's outcome. Never a secret."""

    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    trigger = models.CharField(_("trigger"), max_length=16, choices=Trigger.choices, default=Trigger.PAGE)
    outcome = models.CharField(_("outcome"), max_length=16, choices=Outcome.choices)
    duration_ms = models.PositiveIntegerField(_("duration ms"), default=0)
    protocol = models.CharField(_("protocol"), max_length=32, choices=Protocol.choices)
    server = models.CharField(_("server"), max_length=253)
    steps = models.JSONField(_("steps"), default=list)
    token_claims = models.JSONField(_("token claims"), default=dict, blank=True)

    # The outcome while the test runs: the row is written before it starts, so the rate
    # limit and the one-test-per-user rule count it.
    RUNNING = Outcome.RUNNING

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("connection test run")
        verbose_name_plural = _("connection test runs")
        # The rate limit reads a user's latest runs, the monitoring panel the latest scheduled one;
        # the admin's filters (outcome, trigger, protocol) read the newest runs of one value.
        indexes = [
            models.Index(fields=["user", "created_at"], name="testrun_user_created"),
            models.Index(fields=["trigger", "created_at"], name="testrun_trigger_created"),
            models.Index(fields=["outcome", "created_at"], name="testrun_outcome_created"),
            models.Index(fields=["protocol", "created_at"], name="testrun_protocol_created"),
        ]

    def __str__(self) -> str:
        return gettext("Connection test %(pk)s: %(outcome)s") % {"pk": self.pk, "outcome": self.outcome}

    @property
    def failed_step(self) -> dict | None:
        return next((step for step in self.steps if step["status"] == StepStatus.FAILED), None)


class SettingsChange(models.Model):
    """One saved change of the settings: who, when, and each changed field.

    ``changes`` is a list of {"field", "label", "old", "new"}; for secrets old and new
    are never stored, only that they changed.
    """

    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    changes = models.JSONField(_("changes"), default=list)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("settings change")
        verbose_name_plural = _("settings changes")

    def __str__(self) -> str:
        return gettext("Settings change %(pk)s") % {"pk": self.pk}


class CachedAccessToken(models.Model):
    """msal's token cache for one token provider, encrypted (settings_app.token_cache)."""

    key = models.CharField(max_length=64, primary_key=True)
    value = models.TextField(blank=True, default="")
    # Epoch seconds until which one process is asking the identity service for this key.
    lease_until = models.FloatField(default=0)

    class Meta:
        verbose_name = _("cached access token")
        verbose_name_plural = _("cached access tokens")

    def __str__(self) -> str:
        return self.key[:12]


class MonitorState(models.Model):
    """What the scheduled check last alerted about (always pk=1).

    Monitors change it only by compare-and-set on ``version``, so when two run at once
    exactly one of them claims a change, and only that one alerts.
    """

    SINGLETON_PK = 1

    version = models.PositiveIntegerField(_("version"), default=0)
    outcome = models.CharField(_("outcome"), max_length=16, blank=True)
    code = models.CharField(_("code"), max_length=64, blank=True)
    # {credential: {"expires_on": "YYYY-MM-DD", "threshold": days}}: the last expiry stage alerted.
    expiry = models.JSONField(_("expiry alerts"), default=dict, blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("monitor state")
        verbose_name_plural = _("monitor states")

    def __str__(self) -> str:
        return gettext("Monitor state")


class AlertDelivery(models.Model):
    """One alert posted to the webhook: which event, whether it arrived, the HTTP status. Never the URL."""

    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    event = models.CharField(_("event"), max_length=16)
    kind = models.CharField(_("kind"), max_length=8)
    status = models.CharField(_("status"), max_length=8)
    http_status = models.PositiveSmallIntegerField(_("HTTP status"), null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    error = models.CharField(_("error"), max_length=200, blank=True)
    code = models.CharField(_("code"), max_length=64, blank=True)
    run = models.ForeignKey(
        ConnectionTestRun,
        verbose_name=_("test run"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("alert delivery")
        verbose_name_plural = _("alert deliveries")

    def __str__(self) -> str:
        values = {"pk": self.pk, "event": self.event, "status": self.status}
        return gettext("Alert %(pk)s: %(event)s %(status)s") % values


class MetricCounter(models.Model):
    """A Prometheus counter kept in the database, so every worker process adds to the same value."""

    name = models.CharField(_("name"), max_length=64)
    labels = models.CharField(_("labels"), max_length=200, blank=True)
    value = models.BigIntegerField(_("value"), default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["name", "labels"], name="metric_counter_unique")]
        verbose_name = _("metric counter")
        verbose_name_plural = _("metric counters")

    def __str__(self) -> str:
        return f"{self.name}{{{self.labels}}} {self.value}"
