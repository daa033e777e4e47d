"""From a failed step and its error code to what is wrong and how to fix it.

Pure functions over a table: no I/O. ``diagnose`` fills the fixes with the
administrator's own values and leaves a placeholder only where we cannot know
the value (the Enterprise application's Object ID). The texts are in the active
language (Django's gettext); codes and PowerShell commands are never translated.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from django.utils.translation import gettext as _

if TYPE_CHECKING:
    from settings_app.connection_test import ConnectionSettings

SMTP_STEPS = {"dns", "connect", "ehlo", "starttls", "ehlo_tls", "auth", "send", "quit"}
ENTERPRISE_OBJECT_ID = "<Object ID from Enterprise applications>"


@dataclass(frozen=True)
class Fix:
    text: str
    command: str = ""


@dataclass(frozen=True)
class Finding:
    """``code`` is the failed step's code; ``guide_step`` an anchor of the setup guide."""

    code: str
    title: str
    explanation: str
    causes: tuple[str, ...] = ()
    fixes: tuple[Fix, ...] = ()
    guide_step: str = ""
    variant: str = field(default="", compare=False)

    def as_dict(self) -> dict:
        return asdict(self)


def _ps(value: str) -> str:
    """A PowerShell single-quoted string."""
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class SetupValues:
    """The administrator's values, and the PowerShell commands of the setup guide filled with them."""

    mailbox: str
    client_id: str
    tenant: str
    sender: str
    server: str
    port: int
    microsoft365: bool

    @classmethod
    def of(cls, config: ConnectionSettings) -> SetupValues:
        return cls(
            mailbox=config.username or "<mailbox>",
            client_id=config.client_id or "<Application (client) ID>",
            tenant=config.tenant_id or "<Directory (tenant) ID>",
            sender=config.sender_email or "<sender email>",
            server=config.server or "<server>",
            port=config.port,
            microsoft365=config.is_microsoft365,
        )

    @property
    def _service_principal(self) -> str:
        return f"$sp = Get-ServicePrincipal | Where-Object AppId -eq {_ps(self.client_id)}"

    @property
    def find_service_principal(self) -> str:
        return f"{self._service_principal}\n$sp | Format-List"

    @property
    def new_service_principal(self) -> str:
        return f"New-ServicePrincipal -AppId {_ps(self.client_id)} -ObjectId {_ps(ENTERPRISE_OBJECT_ID)}"

    @property
    def add_mailbox_permission(self) -> str:
        return (
            f"{self._service_principal}\n"
            f"Add-MailboxPermission -Identity {_ps(self.mailbox)} -User $sp.Identity -AccessRights FullAccess"
        )

    @property
    def enable_mailbox_smtp_auth(self) -> str:
        return f"Set-CASMailbox -Identity {_ps(self.mailbox)} -SmtpClientAuthenticationDisabled $false"

    enable_tenant_smtp_auth = "Set-TransportConfig -SmtpClientAuthenticationDisabled $false"

    def add_send_as(self, sender: str) -> str:
        return (
            f"{self._service_principal}\n"
            f"Add-RecipientPermission -Identity {_ps(sender)} -Trustee $sp.Identity -AccessRights SendAs"
        )


_Builder = Callable[[str, SetupValues, str], Finding]
_TOKEN: dict[str, _Builder] = {}
_SMTP: dict[str, _Builder] = {}


def _entry(table: dict[str, _Builder], *codes: str):
    def register(builder: _Builder) -> _Builder:
        for code in codes:
            table[code] = builder
        return builder

    return register


# --- Microsoft Entra ID (the "token" step) ---------------------------------------------


@_entry(_TOKEN, "AADSTS7000215")
def _wrong_secret(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("The client secret is wrong"),
        _("Microsoft Entra ID did not accept the client secret for this application."),
        (
            _("The secret's ID was pasted instead of its Value (the most common mistake)."),
            _("The secret was copied incompletely, or belongs to another app registration."),
        ),
        (
            Fix(
                _(
                    "In the Azure portal open App registrations > the app %(client_id)s > Certificates & "
                    "secrets. A secret's Value is shown only once, when it is created: create a new client "
                    "secret, copy the Value column (not Secret ID) and paste it into Client Secret."
                )
                % {"client_id": v.client_id}
            ),
            Fix(_("Press Save and test again.")),
        ),
        "client-secret",
    )


@_entry(_TOKEN, "AADSTS7000222")
def _expired_secret(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("The client secret has expired"),
        _("Client secrets have an end date; this one has passed it."),
        (_("The secret reached the expiry chosen when it was created (at most 24 months)."),),
        (
            Fix(
                _(
                    "In the Azure portal open App registrations > the app %(client_id)s > Certificates & "
                    "secrets, create a new client secret and paste its Value into Client Secret."
                )
                % {"client_id": v.client_id}
            ),
            Fix(_("Note the new expiry date so you can renew it in time.")),
        ),
        "client-secret",
    )


@_entry(_TOKEN, "AADSTS700016")
def _app_not_found(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("The application is not known in this tenant"),
        _("Entra ID found no application with Client ID %(client_id)s in directory %(tenant)s.")
        % {"client_id": v.client_id, "tenant": v.tenant},
        (
            _("The Client ID is wrong (for example the Object ID was pasted instead)."),
            _("The Tenant ID belongs to another directory than the app registration."),
            _("The application has not been granted admin consent in this tenant."),
        ),
        (
            Fix(
                _(
                    "Open App registrations > your app > Overview and copy 'Application (client) ID' into "
                    "Client ID and 'Directory (tenant) ID' into Tenant ID."
                )
            ),
            Fix(_("Under API permissions, press 'Grant admin consent' for the tenant.")),
        ),
        "app-registration",
    )


@_entry(_TOKEN, "AADSTS90002", "AADSTS900023")
def _tenant_not_found(code: str, v: SetupValues, reply: str) -> Finding:
    bad_format = code == "AADSTS900023"
    return Finding(
        code,
        _("The tenant ID is not valid") if bad_format else _("The tenant does not exist"),
        (
            _("'%(tenant)s' is neither a directory ID nor a domain of a Microsoft 365 tenant.")
            if bad_format
            else _("Microsoft Entra ID knows no tenant '%(tenant)s' in the chosen Microsoft cloud.")
        )
        % {"tenant": v.tenant},
        (
            _("The Tenant ID was mistyped or copied from the wrong place."),
            _("The tenant lives in another Microsoft cloud (US Government or China)."),
        ),
        (
            Fix(
                _(
                    "Open App registrations > your app > Overview and copy 'Directory (tenant) ID' into "
                    "Tenant ID (the tenant's primary domain, such as contoso.onmicrosoft.com, works too)."
                )
            ),
            Fix(_("Check the Microsoft cloud setting matches where your tenant is hosted.")),
        ),
        "app-registration",
    )


@_entry(_TOKEN, "AADSTS1002012", "AADSTS70011", "AADSTS500011")
def _scope_or_resource(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("Exchange Online is not available to this application"),
        _("Entra ID refused to issue a token for Exchange Online in this tenant."),
        (
            _("The Microsoft cloud setting does not match the tenant (each cloud has its own Exchange)."),
            _("The tenant has no Exchange Online (no licence or subscription including it)."),
        ),
        (
            Fix(_("Choose the Microsoft cloud where your tenant is hosted.")),
            Fix(
                _(
                    "Make sure the tenant has Exchange Online, then add the application permission "
                    "Office 365 Exchange Online > SMTP.SendAsApp and grant admin consent."
                )
            ),
        ),
        "api-permissions",
    )


@_entry(_TOKEN, "AADSTS7000218")
def _no_secret(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("No client secret was sent"),
        _("The identity service needs the application's client secret."),
        (_("The Client Secret field is empty."),),
        (Fix(_("Paste the secret's Value from Certificates & secrets into Client Secret.")),),
        "client-secret",
    )


def _identity_unreachable(code: str, v: SetupValues, reply: str) -> Finding:
    titles = {
        "dns": _("The identity service's name cannot be resolved"),
        "refused": _("The identity service refused the connection"),
        "unreachable": _("The identity service cannot be reached"),
        "timeout": _("The identity service did not answer in time"),
    }
    return Finding(
        code,
        titles.get(code, titles["unreachable"]),
        _("This server could not talk to Microsoft Entra ID over HTTPS."),
        (
            _("Outbound HTTPS (port 443) to login.microsoftonline.com is blocked by a firewall."),
            _("A proxy is required: set HTTPS_PROXY for the panel's process."),
            _("DNS on this server does not resolve Microsoft's names."),
        ),
        (
            Fix(_("Allow outbound HTTPS from this server to the Microsoft cloud's login host.")),
            Fix(_("If your network needs a proxy, set HTTPS_PROXY in the panel's environment.")),
        ),
        "configure",
    )


for _code in ("dns", "refused", "unreachable", "timeout"):
    _TOKEN[_code] = _identity_unreachable


@_entry(_TOKEN, "tls-untrusted", "tls-hostname", "tls-failed")
def _identity_tls(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("The identity service's certificate is not trusted"),
        _("The HTTPS certificate presented for Microsoft Entra ID did not verify."),
        (_("A corporate proxy or firewall inspects TLS and re-signs certificates with its own CA."),),
        (
            Fix(
                _(
                    "Ask your network team for the inspection CA certificate (PEM) and point "
                    "MAILADMIN_CA_BUNDLE at it, or add it to the server's trust store."
                )
            ),
        ),
        "configure",
    )


@_entry(_TOKEN, "invalid-response", "invalid-authority")
def _identity_garbled(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("The identity service gave an answer that is not Entra ID's"),
        _("Something between this server and Microsoft answered instead of Entra ID."),
        (_("A proxy, captive portal or firewall page replaced the answer."),),
        (Fix(_("Check the proxy settings of this server (HTTPS_PROXY) and retry.")),),
        "configure",
    )


def _identity_http_error(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("Microsoft Entra ID is having trouble"),
        _("The identity service answered with HTTP %(status)s.") % {"status": code.removeprefix("http-")},
        (_("A temporary outage at Microsoft, or a proxy error."),),
        (Fix(_("Wait a few minutes and test again; check the Microsoft 365 service health page.")),),
        "configure",
    )


def _identity_other(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("Microsoft Entra ID refused to issue a token"),
        _("Entra ID answered: %(reply)s") % {"reply": reply or code},
        (),
        (
            Fix(
                _("Look up %(code)s in Microsoft's AADSTS error reference and correct the app registration.")
                % {"code": code}
            ),
        ),
        "app-registration",
    )


# --- SMTP ---------------------------------------------------------------------------


@_entry(_SMTP, "dns")
def _smtp_dns(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("The mail server's name cannot be resolved"),
        _("DNS on this server does not know '%(server)s'.") % {"server": v.server},
        (_("The Server field has a typo."), _("This server's DNS cannot resolve external names.")),
        (Fix(_("For Microsoft 365 the server is smtp.office365.com (Global cloud).")),),
        "configure",
    )


@_entry(_SMTP, "refused", "unreachable")
def _smtp_refused(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("The mail server refused the connection"),
        _("Nothing accepted a connection on %(server)s:%(port)s.") % {"server": v.server, "port": v.port},
        (
            _("The port is wrong (Microsoft 365 uses 587)."),
            _("A firewall rejects outbound connections to it."),
        ),
        (Fix(_("Use port 587 with STARTTLS, and allow outbound TCP 587 from this server.")),),
        "configure",
    )


@_entry(_SMTP, "timeout")
def _smtp_timeout(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("The mail server did not answer in time"),
        _("%(server)s:%(port)s stayed silent until the test's time ran out.") % {"server": v.server, "port": v.port},
        (
            _("A firewall silently drops outbound SMTP (many hosting providers block it)."),
            _("The port expects implicit TLS (465) while the connection security is STARTTLS or None."),
        ),
        (
            Fix(_("Allow outbound TCP to the server's port; check with your hosting provider.")),
            Fix(_("Match the connection security to the port: 587 = STARTTLS, 465 = SSL/TLS.")),
        ),
        "configure",
    )


@_entry(_SMTP, "disconnected")
def _smtp_disconnected(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("The mail server closed the connection"),
        _("The server hung up in the middle of the conversation."),
        (
            _("The connection security does not match the port (SSL/TLS on 587, or STARTTLS on 465)."),
            _("The server throttles or blocks this client's address."),
        ),
        (Fix(_("Match the connection security to the port: 587 = STARTTLS, 465 = SSL/TLS, then retry.")),),
        "configure",
    )


@_entry(_SMTP, "starttls-unsupported")
def _no_starttls(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("The mail server does not offer STARTTLS"),
        _("%(server)s did not list STARTTLS after EHLO, so the connection cannot be encrypted.")
        % {"server": v.server},
        (
            _("The server or port is not Exchange Online's submission service."),
            _("A firewall or antivirus 'SMTP inspection' strips STARTTLS from the server's answer."),
        ),
        (
            Fix(_("Use smtp.office365.com on port 587 for Microsoft 365.")),
            Fix(_("Turn off SMTP inspection on the firewall between this server and the Internet.")),
        ),
        "configure",
    )


@_entry(_SMTP, "tls-failed")
def _smtp_tls_failed(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("The TLS handshake failed"),
        _("%(server)s:%(port)s did not complete a TLS handshake.") % {"server": v.server, "port": v.port},
        (
            _(
                "The connection security does not match the port: SSL/TLS (implicit TLS) on a STARTTLS port "
                "such as 587, or the reverse."
            ),
            _("The server only offers TLS versions this server refuses."),
        ),
        (Fix(_("Match the connection security to the port: 587 = STARTTLS, 465 = SSL/TLS.")),),
        "configure",
    )


@_entry(_SMTP, "tls-untrusted")
def _smtp_tls_untrusted(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("The mail server's certificate is not trusted"),
        _("The TLS certificate presented for %(server)s did not verify against this server's trust store.")
        % {"server": v.server},
        (
            _("A firewall or proxy intercepts TLS and re-signs with its own CA."),
            _("The server uses a self-signed or private CA certificate."),
        ),
        (
            Fix(
                _("Point MAILADMIN_CA_BUNDLE at the CA certificate (PEM) that signs it, or add it to the trust store.")
            ),
        ),
        "configure",
    )


@_entry(_SMTP, "tls-hostname")
def _smtp_tls_hostname(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("The certificate does not match the server name"),
        _("The certificate is valid, but not for the name '%(server)s'.") % {"server": v.server},
        (_("The Server field holds an IP address or an alias instead of the certificate's name."),),
        (Fix(_("Enter the name the certificate is issued for (for Microsoft 365: smtp.office365.com).")),),
        "configure",
    )


@_entry(_SMTP, "xoauth2-unsupported", "504-5.7.4")
def _no_xoauth2(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("The mail server does not offer OAuth 2.0 (XOAUTH2)"),
        _("%(server)s did not list AUTH XOAUTH2, which Microsoft 365 authentication needs.") % {"server": v.server},
        (
            _("The server is not Exchange Online."),
            _("The connection is not encrypted: Exchange offers AUTH only after STARTTLS."),
        ),
        (Fix(_("Use smtp.office365.com, port 587, connection security STARTTLS.")),),
        "configure",
    )


@_entry(_SMTP, "auth-unsupported")
def _no_auth(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("The mail server offers no authentication here"),
        _("%(server)s listed no AUTH mechanism this panel can use on this connection.") % {"server": v.server},
        (_("Many servers offer AUTH only over an encrypted connection."),),
        (Fix(_("Turn on STARTTLS (port 587) or SSL/TLS (port 465), or turn off secure authentication.")),),
        "configure",
    )


@_entry(_SMTP, "535-5.7.3", "535")
def _auth_unsuccessful(code: str, v: SetupValues, reply: str) -> Finding:
    if not v.microsoft365:
        return Finding(
            code,
            _("The username or password was refused"),
            _("The mail server did not accept the credentials."),
            (_("The username or password is wrong."), _("The account may not send mail through this server.")),
            (Fix(_("Re-enter the password (it is write-only here) and check the username.")),),
            "configure",
        )
    return Finding(
        code,
        _("Exchange Online refused the token (535 5.7.3)"),
        _(
            "The token is valid, but Exchange does not let this application send as %(mailbox)s. "
            "Check these setup steps in this order:"
        )
        % {"mailbox": v.mailbox},
        (
            _("The application's service principal is not registered in Exchange (New-ServicePrincipal)."),
            _(
                "It was registered with the App registration's Object ID instead of the Enterprise "
                "application's Object ID."
            ),
            _("The service principal has no FullAccess permission on the mailbox %(mailbox)s (Add-MailboxPermission).")
            % {"mailbox": v.mailbox},
            _("The permission Office 365 Exchange Online > SMTP.SendAsApp is missing or has no admin consent."),
        ),
        (
            Fix(
                _(
                    "1. Check that the service principal exists (run in Exchange Online PowerShell after "
                    "Connect-ExchangeOnline):"
                ),
                v.find_service_principal,
            ),
            Fix(
                _(
                    "2. If nothing is listed, or its ObjectId is not the one shown under Enterprise "
                    "applications (not App registrations), register it again:"
                ),
                v.new_service_principal,
            ),
            Fix(
                _("3. Give it full access to the mailbox:"),
                v.add_mailbox_permission,
            ),
            Fix(
                _(
                    "4. In the Azure portal, add the application permission Office 365 Exchange Online > "
                    "SMTP.SendAsApp and press 'Grant admin consent'."
                )
            ),
            Fix(_("Exchange can take up to an hour to apply permission changes; test again afterwards.")),
        ),
        "service-principal",
    )


@_entry(_SMTP, "535-5.7.139")
def _smtp_auth_disabled(code: str, v: SetupValues, reply: str) -> Finding:
    lowered = reply.lower()
    if "criteria" in lowered or "security defaults" in lowered:
        return Finding(
            code,
            _("A Microsoft Entra policy blocks SMTP authentication"),
            _("Conditional Access or security defaults refuse this sign-in."),
            (_("Security defaults are on, or a Conditional Access policy blocks legacy/SMTP sign-ins."),),
            (Fix(_("Exclude this application from the policy, or turn off security defaults for the tenant.")),),
            "smtp-auth",
            variant="policy",
        )
    tenant_wide = "for the tenant" in lowered
    mailbox_fix = Fix(
        _("Turn on SMTP AUTH for the mailbox:"),
        v.enable_mailbox_smtp_auth,
    )
    tenant_fix = Fix(_("Turn on SMTP AUTH for the organisation:"), v.enable_tenant_smtp_auth)
    return Finding(
        code,
        _("SMTP AUTH is disabled for the organisation") if tenant_wide else _("SMTP AUTH is disabled for the mailbox"),
        _("Exchange Online has authenticated SMTP switched off for the whole tenant.")
        if tenant_wide
        else _("Exchange Online has authenticated SMTP switched off for %(mailbox)s.") % {"mailbox": v.mailbox},
        (_("SMTP AUTH is off by default in new tenants and mailboxes."),),
        (tenant_fix, mailbox_fix) if tenant_wide else (mailbox_fix, tenant_fix),
        "smtp-auth",
        variant="tenant" if tenant_wide else "mailbox",
    )


@_entry(_SMTP, "530-5.7.57", "530")
def _not_authenticated(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("The server requires authentication before sending"),
        _("The message was offered without a successful AUTH."),
        (_("'Use secure authentication' is off."),),
        (Fix(_("Turn on 'Use secure authentication' and fill in the credentials.")),),
        "configure",
    )


@_entry(_SMTP, "503-5.5.2", "503")
def _send_hello_first(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("The server wanted EHLO before AUTH"),
        _("The server refused AUTH because the conversation was not restarted after TLS."),
        (_("A device between this server and the mail server altered the conversation."),),
        (Fix(_("Test again; if it persists, check for SMTP inspection on your firewall.")),),
        "configure",
    )


@_entry(_SMTP, "554-5.2.252", "550-5.7.60", "554-5.2.0")
def _send_as_denied(code: str, v: SetupValues, reply: str) -> Finding:
    refused = re.search(r"not allowed to send as (\S+?);", reply)
    sender = refused.group(1) if refused else v.sender
    return Finding(
        code,
        _("Exchange refused to send from this address (SendAsDenied)"),
        _("The mailbox %(mailbox)s may not send as %(sender)s.") % {"mailbox": v.mailbox, "sender": sender},
        (
            _("Sender Email differs from the Username mailbox."),
            _("'Use user's email as sender' is on, but the mailbox has no Send As permission for users."),
        ),
        (
            Fix(_("Make Sender Email the same address as Username, or turn off 'Use user's email as sender'.")),
            Fix(
                _("Or grant Send As on that address to the application:"),
                v.add_send_as(sender),
            ),
        ),
        "send-as",
    )


@_entry(_SMTP, "430-4.2.0")
def _mailbox_logon_failure(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("Exchange could not open the mailbox"),
        _("Authentication worked but the application cannot open %(mailbox)s.") % {"mailbox": v.mailbox},
        (_("The FullAccess permission is missing or still propagating."), _("The mailbox has no licence.")),
        (
            Fix(
                _("Give the application full access to the mailbox:"),
                v.add_mailbox_permission,
            ),
        ),
        "mailbox-permission",
    )


@_entry(_SMTP, "non-ascii", "control-characters")
def _unsendable_value(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("A value cannot be sent over SMTP"),
        _(
            "The panel stopped before sending: the username, password or an address contains a line break, "
            "another control character or a non-ASCII character."
        ),
        (),
        (Fix(_("Use plain ASCII (for an international domain, its xn-- form) and press Save and test again.")),),
        "configure",
    )


@_entry(_SMTP, "501-5.5.124")
def _bad_user(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("The username is not a valid mailbox address"),
        _("Exchange did not accept '%(mailbox)s' as the mailbox to authenticate.") % {"mailbox": v.mailbox},
        (_("Username must be the full address of the mailbox the application sends from."),),
        (Fix(_("Enter the mailbox's primary SMTP address in Username (and Sender Email).")),),
        "configure",
    )


def _smtp_transient(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("The mail server closed the session for now"),
        _("The server answered: %(reply)s") % {"reply": reply or code},
        (_("Session time limit, throttling, or a temporary problem at the server."),),
        (Fix(_("Test again in a few minutes; if it persists, check the server's service health.")),),
        "configure",
    )


def _smtp_other(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("The mail server refused the request"),
        _("The server answered: %(reply)s") % {"reply": reply or code},
        (),
        (Fix(_("Read the server's reply in the technical details; it names the refused value.")),),
        "configure",
    )


def diagnose(step: str, code: str, reply: str, config: ConnectionSettings) -> Finding:
    """The finding for a failed ``step`` with error ``code`` and the server's ``reply``."""
    values = SetupValues.of(config)
    if step == "token":
        builder = _TOKEN.get(code)
        if builder is None:
            builder = _identity_http_error if code.startswith("http-") else _identity_other
        return builder(code, values, reply)
    builder = _SMTP.get(code) or _SMTP.get(code.split("-")[0])
    if builder is None:
        builder = _smtp_transient if code[:1] == "4" else _smtp_other
    return builder(code, values, reply)
