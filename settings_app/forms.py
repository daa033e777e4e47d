from __future__ import annotations

import re

from crispy_forms.helper import FormHelper
from crispy_forms.layout import Div, Field, Fieldset, Layout
from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import DomainNameValidator
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_variables

from settings_app import hosts
from settings_app.clouds import CLOUDS, DEFAULT_CLOUD, MICROSOFT365_PORT
from settings_app.fields import UnreadableSecret
from settings_app.models import ConnectionSecurity, OutgoingEmailSettings, Protocol
from settings_app.smtp import CONTROL_CHARACTERS

GUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
SECRET_FIELDS = OutgoingEmailSettings.SECRET_FIELDS
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
}


def validate_no_control_characters(value: str) -> None:
    if CONTROL_CHARACTERS.search(value):
        raise ValidationError(gettext("Remove line breaks, tabs and other control characters."), code="control")


def validate_ascii(value: str) -> None:
    """smtplib sends commands and AUTH data as ASCII only (no SMTPUTF8)."""
    if not value.isascii():
        raise ValidationError(
            gettext(
                "Only plain ASCII can be sent to the mail server: remove accented letters, or use the "
                "domain's xn-- form."
            ),
            code="non_ascii",
        )


def validate_server(value: str) -> None:
    if not hosts.is_valid_server_name(value):
        raise ValidationError(
            gettext("Enter a host name such as smtp.office365.com, or an IP address."), code="invalid_host"
        )


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


def validate_guid(value: str) -> None:
    if not GUID.match(value):
        raise ValidationError(
            gettext(
                "Enter a GUID like 00000000-0000-0000-0000-000000000000 "
                "(App registration > Overview > Application (client) ID)."
            ),
            code="invalid_guid",
        )


def validate_tenant(value: str) -> None:
    if GUID.match(value):
        return
    try:
        DomainNameValidator(accept_idna=False)(value)
    except ValidationError:
        raise ValidationError(
            gettext(
                "Enter the Directory (tenant) ID, a GUID, or the tenant's domain such as contoso.onmicrosoft.com."
            ),
            code="invalid_tenant",
        ) from None


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
            "protocol": _("SMTP Microsoft 365 uses OAuth 2.0 (client credentials) as Exchange Online requires."),
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
        self.fields["client_id"].validators.append(validate_guid)
        self.fields["tenant_id"].validators.append(validate_tenant)
        self.fields["password"].help_text = self._secret_status("password", gettext("Password for plain SMTP."))
        self.fields["client_secret"].help_text = self._secret_status(
            "client_secret",
            gettext("Azure portal > your app > Certificates & secrets: the secret's Value (not its Secret ID)."),
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
                Div("cloud", data_protocols=Protocol.MICROSOFT365),
                "server",
                "port",
                "connection_security",
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
                data_protocols=Protocol.MICROSOFT365,
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
        protocol = data.get("protocol")
        if protocol == Protocol.MICROSOFT365:
            self._clean_microsoft365(data)
        elif protocol == Protocol.SMTP:
            self._require(data, "server", "port")
            if data.get("use_secure_auth"):
                self._require(data, "username")
                self._require_secret(data, "password")
        if not data.get("use_user_email_as_sender") or protocol == Protocol.MICROSOFT365:
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
        if commit:
            record.save()
        return record
