from __future__ import annotations

from crispy_forms.helper import FormHelper
from crispy_forms.layout import HTML, Div, Field, Fieldset, Layout
from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_variables

from settings_app import certificates, credentials, hosts
from settings_app.clouds import CLOUDS, DEFAULT_CLOUD, MICROSOFT365_PORT
from settings_app.fields import UnreadableSecret
from settings_app.models import ConnectionSecurity, CredentialType, OutgoingEmailSettings, Protocol, WebhookKind
from settings_app.validators import (
    validate_ascii,
    validate_guid,
    validate_no_control_characters,
    validate_server,
    validate_tenant,
)

SECRET_FIELDS = OutgoingEmailSettings.SECRET_FIELDS
# data-protocols of the page's field groups (static/js/outgoing_email.js shows the chosen protocol's).
ENTRA_PROTOCOLS = f"{Protocol.MICROSOFT365} {Protocol.GRAPH}"
SMTP_PROTOCOLS = f"{Protocol.SMTP} {Protocol.MICROSOFT365}"
MAX_CERTIFICATE_UPLOAD = 256 * 1024
CERTIFICATE_INPUTS = {"certificate_days", "certificate_file", "certificate_key_file", "certificate_passphrase"}
# Whole sentences per secret, so that a translation can agree in gender with each noun.
SECRET_STATUS = {
    "password": {
        "unreadable": _("A password is saved but can no longer be decrypted: enter it again."),
        "saved": _("A password is saved. Leave blank to keep it."),
        "none": _("No password is saved."),
        "lost": _(
            "The saved password can no longer be decrypted (the encryption key changed or was lost). "
            "Enter the password again."
        ),
        "missing": _("Enter the password."),
    },
    "client_secret": {
        "unreadable": _("A client secret is saved but can no longer be decrypted: enter it again."),
        "saved": _("A client secret is saved. Leave blank to keep it."),
        "none": _("No client secret is saved."),
        "lost": _(
            "The saved client secret can no longer be decrypted (the encryption key changed or was lost). "
            "Enter the client secret again."
        ),
        "missing": _("Enter the client secret."),
    },
    "alert_webhook_url": {
        "unreadable": _("A webhook URL is saved but can no longer be decrypted: enter it again."),
        "saved": _("A webhook URL is saved. Leave blank to keep it."),
        "none": _("No webhook URL is saved: failures are shown only on this page."),
    },
}


def validate_allowed_server(value: str) -> None:
    """Only hosts in MAILADMIN_ALLOWED_SMTP_HOSTS, when set: the test must not become a port scanner.
    By name here; ``smtp.resolve`` checks the resolved addresses on every connection."""
    allowed = settings.MAILADMIN_ALLOWED_SMTP_HOSTS
    if hosts.name_is_allowed(value, allowed) or hosts.literal_is_allowed(value, allowed):
        return
    raise ValidationError(
        gettext("This server is not allowed here (MAILADMIN_ALLOWED_SMTP_HOSTS: %(allowed)s)."),
        code="not_allowed",
        params={"allowed": ", ".join(allowed)},
    )


class OutgoingEmailSettingsForm(forms.ModelForm):
    """The Outgoing Email page. Secrets are write-only: blank keeps the saved one."""

    password = forms.CharField(
        label=_("Password"),
        required=False,
        strip=False,
        max_length=1024,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        validators=[validate_no_control_characters, validate_ascii],
    )
    client_secret = forms.CharField(
        label=_("Client secret"),
        required=False,
        max_length=1024,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        validators=[validate_no_control_characters],
    )
    alert_webhook_url = forms.CharField(
        label=_("Webhook URL"),
        required=False,
        max_length=2048,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        validators=[validate_no_control_characters, URLValidator(schemes=["https", "http"])],
    )
    alert_webhook_remove = forms.BooleanField(label=_("Remove the saved webhook URL"), required=False)
    port = forms.IntegerField(
        label=_("Port"),
        required=False,
        min_value=1,
        max_value=65535,
        help_text=_("587 for STARTTLS (Microsoft 365), 465 for SSL/TLS, 25 for none."),
    )
    certificate_days = forms.IntegerField(
        label=_("Validity of a generated certificate (days)"),
        required=False,
        min_value=1,
        max_value=certificates.MAX_DAYS,
        initial=certificates.DEFAULT_DAYS,
        help_text=_("For 'Generate certificate': 365 days unless you choose otherwise, at most 730 (2 years)."),
    )
    certificate_file = forms.FileField(
        label=_("Certificate file"),
        required=False,
        help_text=_(
            "Bring your own: a PEM certificate (.pem, .crt, .cer), or a PKCS#12 file (.pfx, .p12) with its key."
        ),
    )
    certificate_key_file = forms.FileField(
        label=_("Private key file"),
        required=False,
        help_text=_("The certificate's PEM private key, unless the certificate file holds it (PKCS#12, or one PEM)."),
    )
    certificate_passphrase = forms.CharField(
        label=_("Passphrase"),
        required=False,
        strip=False,
        max_length=1024,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text=_("Of the .pfx file or of an encrypted private key; it is not stored."),
    )
    version = forms.IntegerField(required=False, widget=forms.HiddenInput)
    test_recipient = forms.EmailField(
        label=_("Test recipient"),
        required=False,
        validators=[validate_ascii],
        help_text=_("Optional. With an address here, Save and test also sends a short test message."),
    )

    class Meta:
        model = OutgoingEmailSettings
        fields = [name for name in OutgoingEmailSettings.EDITABLE_FIELDS if name not in SECRET_FIELDS]
        widgets = {
            "client_secret_expires_on": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
            "credential_type": forms.RadioSelect(attrs={"data-credential-select": "1"}),
        }
        help_texts = {
            "protocol": _(
                "SMTP Microsoft 365 uses OAuth 2.0 (client credentials) as Exchange Online requires. "
                "Microsoft 365 (Graph API) sends through Microsoft Graph and needs no SMTP AUTH."
            ),
            "cloud": _("Where your Microsoft 365 tenant is hosted; most tenants are Global."),
            "server": _("For Microsoft 365: smtp.office365.com."),
            "use_secure_auth": _("Authenticate to the server. Always on for Microsoft 365."),
            "username": _("For Microsoft 365: the mailbox the application connects as, e.g. noreply@contoso.com."),
            "sender_email": _("The From address. For Microsoft 365 use the same mailbox as Username."),
            "use_user_email_as_sender": _(
                "Send as the user who triggers a message. Microsoft 365 needs the Send As permission "
                "(Add-RecipientPermission) for every such address."
            ),
            "client_id": _("Azure portal > App registrations > your app > Overview: Application (client) ID."),
            "tenant_id": _(
                "Same page: Directory (tenant) ID (or the tenant's domain, e.g. contoso.onmicrosoft.com)."
            ),
            "alert_webhook_kind": _(
                "Where the scheduled check (manage.py monitor_outgoing_email) posts its alerts: mail is not used, "
                "since it may be what is broken."
            ),
            "credential_type": _(
                "How the application proves its identity to Entra ID. A certificate is recommended: no secret "
                "to paste or leak, and the private key never leaves this server."
            ),
        }

    def __init__(self, *args, read_only: bool = False, action: str = "", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.saved_secrets = {name: getattr(self.instance, name) for name in SECRET_FIELDS}
        self.action = action
        # Judged before the post changes the instance: a new certificate must wait if one is in use.
        self.certificate_in_use = credentials.certificate_in_use(self.instance)
        self.new_certificate: certificates.CertificateBundle | None = None
        self.installed_as = ""
        self.fields["version"].initial = self.instance.version
        for name in ("server", "username", "tenant_id"):
            self.fields[name].validators.append(validate_no_control_characters)
        for name in ("username", "sender_email"):
            self.fields[name].validators.append(validate_ascii)
        self.fields["server"].validators += [validate_server, validate_allowed_server]
        self.fields["cloud"].required = False
        self.fields["alert_webhook_kind"].required = False
        # Not used by Microsoft Graph; clean() requires it for the SMTP protocols.
        self.fields["connection_security"].required = False
        self.fields["credential_type"].required = False
        self.fields["client_id"].validators.append(validate_guid)
        self.fields["tenant_id"].validators.append(validate_tenant)
        self.fields["password"].help_text = self._secret_status("password", gettext("Password for plain SMTP."))
        self.fields["client_secret"].help_text = self._secret_status(
            "client_secret",
            gettext("Azure portal > your app > Certificates & secrets: the secret's Value (not its Secret ID)."),
        )
        self.fields["alert_webhook_url"].help_text = self._secret_status(
            "alert_webhook_url",
            gettext("Teams: Workflows > \"Post to a channel when a webhook request is received\". Slack: an incoming "
                    "webhook. The URL is kept encrypted: it carries its own secret."),
        )
        if read_only:
            for field in self.fields.values():
                field.disabled = True

    @cached_property
    def helper(self) -> FormHelper:
        """crispy's layout, built only when the form is shown (a post that is saved never is)."""
        helper = FormHelper()
        helper.form_tag = False
        # The page's <form> has its own {% csrf_token %}: the markup crispy renders is kept
        # between requests and sessions (templatetags/page_form.py), so it must hold no token.
        helper.disable_csrf = True
        helper.layout = _page_layout()
        return helper

    @sensitive_variables("saved")
    def _secret_status(self, name: str, hint: str) -> str:
        saved = self.saved_secrets[name]
        if isinstance(saved, UnreadableSecret):
            status = SECRET_STATUS[name]["unreadable"]
        elif saved:
            status = SECRET_STATUS[name]["saved"]
        else:
            status = SECRET_STATUS[name]["none"]
        return f"{status} {hint}"

    def clean(self):
        data = super().clean()
        self._check_version(data)
        if not data.get("cloud") and "cloud" not in self.errors:
            data["cloud"] = DEFAULT_CLOUD
        if not data.get("alert_webhook_kind") and "alert_webhook_kind" not in self.errors:
            data["alert_webhook_kind"] = WebhookKind.JSON
        if not data.get("credential_type") and "credential_type" not in self.errors:
            # A post without the choice (an older page, a script) keeps the saved credential.
            data["credential_type"] = self.instance.credential_type or CredentialType.SECRET
        protocol = data.get("protocol")
        if protocol == Protocol.MICROSOFT365:
            self._clean_microsoft365(data)
        elif protocol == Protocol.GRAPH:
            self._clean_graph(data)
        elif protocol == Protocol.SMTP:
            self._require(data, "server", "port", "connection_security")
            if data.get("use_secure_auth"):
                self._require(data, "username")
                self._require_secret(data, "password")
        if not data.get("use_user_email_as_sender") or protocol in (Protocol.MICROSOFT365, Protocol.GRAPH):
            self._require(data, "sender_email")
        return data

    def _check_version(self, data: dict) -> None:
        """Refuse a post made against settings someone else saved since (when the page sent a version)."""
        posted = data.get("version")
        if posted is None or posted == self.instance.version:
            return
        who = self.instance.updated_by.get_username() if self.instance.updated_by else gettext("someone else")
        when = timezone.localtime(self.instance.updated_at).strftime("%Y-%m-%d %H:%M:%S")
        # Re-rendered with the current version, so saving again deliberately overwrites.
        self.data = self.data.copy()
        self.data["version"] = str(self.instance.version)
        raise ValidationError(
            gettext(
                "These settings were changed by %(who)s at %(when)s since you opened the page. Nothing was saved: "
                "review your input below (kept as you typed it), then save again to overwrite their change, "
                "or reload the page to see it."
            ),
            code="conflict",
            params={"who": who, "when": when},
        )

    def _clean_graph(self, data: dict) -> None:
        """Server, port and connection security do not apply: whatever was posted, the saved ones stay."""
        for name in ("server", "port", "connection_security"):
            self._errors.pop(name, None)
            data[name] = getattr(self.instance, name)
        data["port"] = data["port"] or MICROSOFT365_PORT
        data["connection_security"] = data["connection_security"] or ConnectionSecurity.STARTTLS
        self._clean_entra_mailbox(data)

    def _clean_microsoft365(self, data: dict) -> None:
        cloud = CLOUDS[data["cloud"]] if data.get("cloud") in CLOUDS else CLOUDS[DEFAULT_CLOUD]
        if not data.get("server") and "server" not in self.errors:
            data["server"] = cloud.smtp_host
        if not data.get("port") and "port" not in self.errors:
            data["port"] = MICROSOFT365_PORT
        if data.get("connection_security") == ConnectionSecurity.NONE:
            self.add_error(
                "connection_security",
                gettext("Microsoft 365 sends the token only over an encrypted connection: choose STARTTLS (port 587)."),
            )
        if not data.get("connection_security") and "connection_security" not in self.errors:
            data["connection_security"] = ConnectionSecurity.STARTTLS
        self._clean_entra_mailbox(data)

    def _clean_entra_mailbox(self, data: dict) -> None:
        """The mailbox and the Entra ID application, for both Microsoft 365 protocols."""
        data["use_secure_auth"] = True
        self._require(data, "username", "client_id", "tenant_id")
        username = data.get("username")
        if username and "username" not in self.errors:
            try:
                forms.EmailField().clean(username)
            except ValidationError:
                self.add_error(
                    "username",
                    gettext("For Microsoft 365 the username is the mailbox's address, e.g. noreply@contoso.com."),
                )
        self._clean_credential(data)

    def _clean_credential(self, data: dict) -> None:
        kind = data.get("credential_type") or CredentialType.SECRET
        self._clean_new_certificate(data)
        if kind == CredentialType.SECRET:
            self._require_secret(data, "client_secret")
        elif kind == CredentialType.CERTIFICATE and not (
            self.new_certificate or self.instance.certificate or CERTIFICATE_INPUTS & set(self.errors)
        ):
            self.add_error(
                "certificate_file",
                gettext("Press 'Generate certificate', or upload a certificate with its private key."),
            )

    def _clean_new_certificate(self, data: dict) -> None:
        """A certificate generated for the generate_certificate action, or parsed from the uploads."""
        upload, key_upload = data.get("certificate_file"), data.get("certificate_key_file")
        try:
            if self.action == "generate_certificate":
                days = data.get("certificate_days") or certificates.DEFAULT_DAYS
                self.new_certificate = certificates.generate(days)
            elif upload:
                self.new_certificate = certificates.load_upload(
                    _read_upload(upload), _read_upload(key_upload), data.get("certificate_passphrase") or ""
                )
            elif key_upload:
                self.add_error("certificate_file", gettext("Upload the certificate file with its private key."))
        except certificates.CertificateProblem as problem:
            field = "certificate_days" if problem.code == "validity" else "certificate_file"
            if problem.code in ("key-missing", "key-invalid", "key-mismatch") and key_upload:
                field = "certificate_key_file"
            elif problem.code.startswith("passphrase") or problem.code == "key-not-encrypted":
                field = "certificate_passphrase"
            self.add_error(field, ValidationError(problem.message, code=problem.code))

    def _require(self, data: dict, *names: str) -> None:
        label = dict(Protocol.choices).get(data.get("protocol")) or gettext("this protocol")
        for name in names:
            if data.get(name) in (None, "") and name not in self.errors:
                self.add_error(
                    name,
                    ValidationError(gettext("Required for %(protocol)s."), params={"protocol": label}),
                )

    @sensitive_variables("data", "saved")
    def _require_secret(self, data: dict, name: str) -> None:
        if data.get(name) or name in self.errors:
            return
        saved = self.saved_secrets[name]
        if isinstance(saved, UnreadableSecret):
            self.add_error(name, str(SECRET_STATUS[name]["lost"]))
        elif not saved:
            self.add_error(name, str(SECRET_STATUS[name]["missing"]))

    @sensitive_variables("new_value")
    def save(self, commit: bool = True) -> OutgoingEmailSettings:
        record = super().save(commit=False)
        for name in SECRET_FIELDS:
            new_value = self.cleaned_data.get(name)
            setattr(record, name, new_value if new_value else self.saved_secrets[name])
        if self.cleaned_data.get("alert_webhook_remove") and not self.cleaned_data.get("alert_webhook_url"):
            record.alert_webhook_url = ""
        if self.action == "discard_pending_certificate":
            credentials.discard_pending(record)
        if self.new_certificate is not None:
            self.installed_as = credentials.install_certificate(
                record, self.new_certificate, in_use=self.certificate_in_use
            )
        if commit:
            record.save()
        return record


def _page_layout() -> Layout:
    """The page's field groups; ``data-protocols`` and ``data-credentials`` let
    static/js/outgoing_email.js show only what the chosen protocol and credential use."""
    return Layout(
        Fieldset(
            gettext("Server"),
            Field("protocol", data_protocol_select="1"),
            Div("cloud", data_protocols=ENTRA_PROTOCOLS),
            Div("server", "port", "connection_security", data_protocols=SMTP_PROTOCOLS),
        ),
        Fieldset(
            gettext("Authentication and sender"),
            Div("use_secure_auth", data_protocols=Protocol.SMTP),
            "username",
            Div("password", data_protocols=Protocol.SMTP),
            "sender_email",
            "use_user_email_as_sender",
        ),
        Fieldset(
            gettext("Microsoft Entra ID application"),
            "client_id",
            "tenant_id",
            "credential_type",
            Div("client_secret", "client_secret_expires_on", data_credentials=CredentialType.SECRET),
            Div(
                HTML('{% include "settings_app/_certificate_status.html" %}'),
                "certificate_days",
                "certificate_file",
                "certificate_key_file",
                "certificate_passphrase",
                data_credentials=CredentialType.CERTIFICATE,
            ),
            Div(
                HTML('{% include "settings_app/_federated_status.html" %}'),
                data_credentials=CredentialType.FEDERATED,
            ),
            data_protocols=ENTRA_PROTOCOLS,
        ),
        Fieldset(
            gettext("Alerts"),
            "alert_webhook_kind",
            "alert_webhook_url",
            "alert_webhook_remove",
            css_id="alerts-settings",
        ),
        Fieldset(gettext("Test"), "test_recipient"),
    )


def _read_upload(upload) -> bytes:
    """An uploaded file's bytes; certificates and keys are small, so anything larger is refused whole."""
    if not upload:
        return b""
    if upload.size > MAX_CERTIFICATE_UPLOAD:
        raise certificates.CertificateProblem("too-large", gettext("The file is too large for a certificate."))
    return upload.read()
