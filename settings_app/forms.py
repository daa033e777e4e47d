from __future__ import annotations

from crispy_forms.helper import FormHelper
from crispy_forms.layout import Div, Field, Fieldset, Layout
from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_variables

from settings_app import hosts
from settings_app.clouds import CLOUDS, DEFAULT_CLOUD, MICROSOFT365_PORT
from settings_app.fields import UnreadableSecret
from settings_app.models import ConnectionSecurity, OutgoingEmailSettings, Protocol, WebhookKind
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
        widgets = {"client_secret_expires_on": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")}
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
        }

    def __init__(self, *args, read_only: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.saved_secrets = {name: getattr(self.instance, name) for name in SECRET_FIELDS}
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
        self.helper = FormHelper()
        self.helper.form_tag = False
        self.helper.layout = Layout(
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
                "client_secret",
                "client_secret_expires_on",
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
            "version",
        )

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
        self._require_secret(data, "client_secret")

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
        if commit:
            record.save()
        return record
