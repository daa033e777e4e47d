"""From a failed step and its error code to what is wrong and how to fix it.

Pure functions over a table: no I/O, no Django. ``diagnose`` fills the fixes with
the administrator's own values and leaves a placeholder only where we cannot know
the value (the Enterprise application's Object ID).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

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
        "The client secret is wrong",
        "Microsoft Entra ID did not accept the client secret for this application.",
        (
            "The secret's ID was pasted instead of its Value (the most common mistake).",
            "The secret was copied incompletely, or belongs to another app registration.",
        ),
        (
            Fix(
                f"In the Azure portal open App registrations > the app {v.client_id} > Certificates & "
                "secrets. A secret's Value is shown only once, when it is created: create a new client "
                "secret, copy the Value column (not Secret ID) and paste it into Client Secret."
            ),
            Fix("Press Save and test again."),
        ),
        "client-secret",
    )


@_entry(_TOKEN, "AADSTS7000222")
def _expired_secret(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        "The client secret has expired",
        "Client secrets have an end date; this one has passed it.",
        ("The secret reached the expiry chosen when it was created (at most 24 months).",),
        (
            Fix(
                f"In the Azure portal open App registrations > the app {v.client_id} > Certificates & "
                "secrets, create a new client secret and paste its Value into Client Secret."
            ),
            Fix("Note the new expiry date so you can renew it in time."),
        ),
        "client-secret",
    )


@_entry(_TOKEN, "AADSTS700016")
def _app_not_found(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        "The application is not known in this tenant",
        f"Entra ID found no application with Client ID {v.client_id} in directory {v.tenant}.",
        (
            "The Client ID is wrong (for example the Object ID was pasted instead).",
            "The Tenant ID belongs to another directory than the app registration.",
            "The application has not been granted admin consent in this tenant.",
        ),
        (
            Fix(
                "Open App registrations > your app > Overview and copy 'Application (client) ID' into "
                "Client ID and 'Directory (tenant) ID' into Tenant ID."
            ),
            Fix("Under API permissions, press 'Grant admin consent' for the tenant."),
        ),
        "app-registration",
    )


@_entry(_TOKEN, "AADSTS90002", "AADSTS900023")
def _tenant_not_found(code: str, v: SetupValues, reply: str) -> Finding:
    bad_format = code == "AADSTS900023"
    return Finding(
        code,
        "The tenant ID is not valid" if bad_format else "The tenant does not exist",
        (
            f"'{v.tenant}' is neither a directory ID nor a domain of a Microsoft 365 tenant."
            if bad_format
            else f"Microsoft Entra ID knows no tenant '{v.tenant}' in the chosen Microsoft cloud."
        ),
        (
            "The Tenant ID was mistyped or copied from the wrong place.",
            "The tenant lives in another Microsoft cloud (US Government or China).",
        ),
        (
            Fix(
                "Open App registrations > your app > Overview and copy 'Directory (tenant) ID' into "
                "Tenant ID (the tenant's primary domain, such as contoso.onmicrosoft.com, works too)."
            ),
            Fix("Check the Microsoft cloud setting matches where your tenant is hosted."),
        ),
        "app-registration",
    )


@_entry(_TOKEN, "AADSTS1002012", "AADSTS70011", "AADSTS500011")
def _scope_or_resource(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        "Exchange Online is not available to this application",
        "Entra ID refused to issue a token for Exchange Online in this tenant.",
        (
            "The Microsoft cloud setting does not match the tenant (each cloud has its own Exchange).",
            "The tenant has no Exchange Online (no licence or subscription including it).",
        ),
        (
            Fix("Choose the Microsoft cloud where your tenant is hosted."),
            Fix(
                "Make sure the tenant has Exchange Online, then add the application permission "
                "Office 365 Exchange Online > SMTP.SendAsApp and grant admin consent."
            ),
        ),
        "api-permissions",
    )


@_entry(_TOKEN, "AADSTS7000218")
def _no_secret(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        "No client secret was sent",
        "The identity service needs the application's client secret.",
        ("The Client Secret field is empty.",),
        (Fix("Paste the secret's Value from Certificates & secrets into Client Secret."),),
        "client-secret",
    )


def _identity_unreachable(code: str, v: SetupValues, reply: str) -> Finding:
    titles = {
        "dns": "The identity service's name cannot be resolved",
        "refused": "The identity service refused the connection",
        "unreachable": "The identity service cannot be reached",
        "timeout": "The identity service did not answer in time",
    }
    return Finding(
        code,
        titles.get(code, titles["unreachable"]),
        "This server could not talk to Microsoft Entra ID over HTTPS.",
        (
            "Outbound HTTPS (port 443) to login.microsoftonline.com is blocked by a firewall.",
            "A proxy is required: set HTTPS_PROXY for the panel's process.",
            "DNS on this server does not resolve Microsoft's names.",
        ),
        (
            Fix("Allow outbound HTTPS from this server to the Microsoft cloud's login host."),
            Fix("If your network needs a proxy, set HTTPS_PROXY in the panel's environment."),
        ),
        "configure",
    )


for _code in ("dns", "refused", "unreachable", "timeout"):
    _TOKEN[_code] = _identity_unreachable


@_entry(_TOKEN, "tls-untrusted", "tls-hostname", "tls-failed")
def _identity_tls(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        "The identity service's certificate is not trusted",
        "The HTTPS certificate presented for Microsoft Entra ID did not verify.",
        ("A corporate proxy or firewall inspects TLS and re-signs certificates with its own CA.",),
        (
            Fix(
                "Ask your network team for the inspection CA certificate (PEM) and point "
                "MAILADMIN_CA_BUNDLE at it, or add it to the server's trust store."
            ),
        ),
        "configure",
    )


@_entry(_TOKEN, "invalid-response", "invalid-authority")
def _identity_garbled(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        "The identity service gave an answer that is not Entra ID's",
        "Something between this server and Microsoft answered instead of Entra ID.",
        ("A proxy, captive portal or firewall page replaced the answer.",),
        (Fix("Check the proxy settings of this server (HTTPS_PROXY) and retry."),),
        "configure",
    )


def _identity_http_error(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        "Microsoft Entra ID is having trouble",
        f"The identity service answered with HTTP {code.removeprefix('http-')}.",
        ("A temporary outage at Microsoft, or a proxy error.",),
        (Fix("Wait a few minutes and test again; check the Microsoft 365 service health page."),),
        "configure",
    )


def _identity_other(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        "Microsoft Entra ID refused to issue a token",
        f"Entra ID answered: {reply or code}",
        (),
        (Fix(f"Look up {code} in Microsoft's AADSTS error reference and correct the app registration."),),
        "app-registration",
    )


# --- SMTP ---------------------------------------------------------------------------


@_entry(_SMTP, "dns")
def _smtp_dns(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        "The mail server's name cannot be resolved",
        f"DNS on this server does not know '{v.server}'.",
        ("The Server field has a typo.", "This server's DNS cannot resolve external names."),
        (Fix("For Microsoft 365 the server is smtp.office365.com (Global cloud)."),),
        "configure",
    )


@_entry(_SMTP, "refused", "unreachable")
def _smtp_refused(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        "The mail server refused the connection",
        f"Nothing accepted a connection on {v.server}:{v.port}.",
        ("The port is wrong (Microsoft 365 uses 587).", "A firewall rejects outbound connections to it."),
        (Fix("Use port 587 with STARTTLS, and allow outbound TCP 587 from this server."),),
        "configure",
    )


@_entry(_SMTP, "timeout")
def _smtp_timeout(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        "The mail server did not answer in time",
        f"{v.server}:{v.port} stayed silent until the test's time ran out.",
        (
            "A firewall silently drops outbound SMTP (many hosting providers block it).",
            "The port expects implicit TLS (465) while the connection security is STARTTLS or None.",
        ),
        (
            Fix("Allow outbound TCP to the server's port; check with your hosting provider."),
            Fix("Match the connection security to the port: 587 = STARTTLS, 465 = SSL/TLS."),
        ),
        "configure",
    )


@_entry(_SMTP, "disconnected")
def _smtp_disconnected(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        "The mail server closed the connection",
        "The server hung up in the middle of the conversation.",
        (
            "The connection security does not match the port (SSL/TLS on 587, or STARTTLS on 465).",
            "The server throttles or blocks this client's address.",
        ),
        (Fix("Match the connection security to the port: 587 = STARTTLS, 465 = SSL/TLS, then retry."),),
        "configure",
    )


@_entry(_SMTP, "starttls-unsupported")
def _no_starttls(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        "The mail server does not offer STARTTLS",
        f"{v.server} did not list STARTTLS after EHLO, so the connection cannot be encrypted.",
        (
            "The server or port is not Exchange Online's submission service.",
            "A firewall or antivirus 'SMTP inspection' strips STARTTLS from the server's answer.",
        ),
        (
            Fix("Use smtp.office365.com on port 587 for Microsoft 365."),
            Fix("Turn off SMTP inspection on the firewall between this server and the Internet."),
        ),
        "configure",
    )


@_entry(_SMTP, "tls-failed")
def _smtp_tls_failed(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        "The TLS handshake failed",
        f"{v.server}:{v.port} did not complete a TLS handshake.",
        (
            "The connection security does not match the port: SSL/TLS (implicit TLS) on a STARTTLS port "
            "such as 587, or the reverse.",
            "The server only offers TLS versions this server refuses.",
        ),
        (Fix("Match the connection security to the port: 587 = STARTTLS, 465 = SSL/TLS."),),
        "configure",
    )


@_entry(_SMTP, "tls-untrusted")
def _smtp_tls_untrusted(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        "The mail server's certificate is not trusted",
        f"The TLS certificate presented for {v.server} did not verify against this server's trust store.",
        (
            "A firewall or proxy intercepts TLS and re-signs with its own CA.",
            "The server uses a self-signed or private CA certificate.",
        ),
        (Fix("Point MAILADMIN_CA_BUNDLE at the CA certificate (PEM) that signs it, or add it to the trust store."),),
        "configure",
    )


@_entry(_SMTP, "tls-hostname")
def _smtp_tls_hostname(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        "The certificate does not match the server name",
        f"The certificate is valid, but not for the name '{v.server}'.",
        ("The Server field holds an IP address or an alias instead of the certificate's name.",),
        (Fix("Enter the name the certificate is issued for (for Microsoft 365: smtp.office365.com)."),),
        "configure",
    )


@_entry(_SMTP, "xoauth2-unsupported", "504-5.7.4")
def _no_xoauth2(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        "The mail server does not offer OAuth 2.0 (XOAUTH2)",
        f"{v.server} did not list AUTH XOAUTH2, which Microsoft 365 authentication needs.",
        (
            "The server is not Exchange Online.",
            "The connection is not encrypted: Exchange offers AUTH only after STARTTLS.",
        ),
        (Fix("Use smtp.office365.com, port 587, connection security STARTTLS."),),
        "configure",
    )


@_entry(_SMTP, "auth-unsupported")
def _no_auth(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        "The mail server offers no authentication here",
        f"{v.server} listed no AUTH mechanism this panel can use on this connection.",
        ("Many servers offer AUTH only over an encrypted connection.",),
        (Fix("Turn on STARTTLS (port 587) or SSL/TLS (port 465), or turn off secure authentication."),),
        "configure",
    )


@_entry(_SMTP, "535-5.7.3", "535")
def _auth_unsuccessful(code: str, v: SetupValues, reply: str) -> Finding:
    if not v.microsoft365:
        return Finding(
            code,
            "The username or password was refused",
            "The mail server did not accept the credentials.",
            ("The username or password is wrong.", "The account may not send mail through this server."),
            (Fix("Re-enter the password (it is write-only here) and check the username."),),
            "configure",
        )
    return Finding(
        code,
        "Exchange Online refused the token (535 5.7.3)",
        f"The token is valid, but Exchange does not let this application send as {v.mailbox}. "
        "Check these setup steps in this order:",
        (
            "The application's service principal is not registered in Exchange (New-ServicePrincipal).",
            "It was registered with the App registration's Object ID instead of the Enterprise "
            "application's Object ID.",
            f"The service principal has no FullAccess permission on the mailbox {v.mailbox} "
            "(Add-MailboxPermission).",
            "The permission Office 365 Exchange Online > SMTP.SendAsApp is missing or has no admin consent.",
        ),
        (
            Fix(
                "1. Check that the service principal exists (run in Exchange Online PowerShell after "
                "Connect-ExchangeOnline):",
                v.find_service_principal,
            ),
            Fix(
                "2. If nothing is listed, or its ObjectId is not the one shown under Enterprise "
                "applications (not App registrations), register it again:",
                v.new_service_principal,
            ),
            Fix(
                "3. Give it full access to the mailbox:",
                v.add_mailbox_permission,
            ),
            Fix(
                "4. In the Azure portal, add the application permission Office 365 Exchange Online > "
                "SMTP.SendAsApp and press 'Grant admin consent'."
            ),
            Fix("Exchange can take up to an hour to apply permission changes; test again afterwards."),
        ),
        "service-principal",
    )


@_entry(_SMTP, "535-5.7.139")
def _smtp_auth_disabled(code: str, v: SetupValues, reply: str) -> Finding:
    lowered = reply.lower()
    if "criteria" in lowered or "security defaults" in lowered:
        return Finding(
            code,
            "A Microsoft Entra policy blocks SMTP authentication",
            "Conditional Access or security defaults refuse this sign-in.",
            ("Security defaults are on, or a Conditional Access policy blocks legacy/SMTP sign-ins.",),
            (Fix("Exclude this application from the policy, or turn off security defaults for the tenant."),),
            "smtp-auth",
            variant="policy",
        )
    tenant_wide = "for the tenant" in lowered
    mailbox_fix = Fix(
        "Turn on SMTP AUTH for the mailbox:",
        v.enable_mailbox_smtp_auth,
    )
    tenant_fix = Fix(
        "Turn on SMTP AUTH for the organisation:", v.enable_tenant_smtp_auth
    )
    return Finding(
        code,
        "SMTP AUTH is disabled for the " + ("organisation" if tenant_wide else "mailbox"),
        "Exchange Online has authenticated SMTP switched off"
        + (" for the whole tenant." if tenant_wide else f" for {v.mailbox}."),
        ("SMTP AUTH is off by default in new tenants and mailboxes.",),
        (tenant_fix, mailbox_fix) if tenant_wide else (mailbox_fix, tenant_fix),
        "smtp-auth",
        variant="tenant" if tenant_wide else "mailbox",
    )


@_entry(_SMTP, "530-5.7.57", "530")
def _not_authenticated(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        "The server requires authentication before sending",
        "The message was offered without a successful AUTH.",
        ("'Use secure authentication' is off.",),
        (Fix("Turn on 'Use secure authentication' and fill in the credentials."),),
        "configure",
    )


@_entry(_SMTP, "503-5.5.2", "503")
def _send_hello_first(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        "The server wanted EHLO before AUTH",
        "The server refused AUTH because the conversation was not restarted after TLS.",
        ("A device between this server and the mail server altered the conversation.",),
        (Fix("Test again; if it persists, check for SMTP inspection on your firewall."),),
        "configure",
    )


@_entry(_SMTP, "554-5.2.252", "550-5.7.60", "554-5.2.0")
def _send_as_denied(code: str, v: SetupValues, reply: str) -> Finding:
    refused = re.search(r"not allowed to send as (\S+?);", reply)
    sender = refused.group(1) if refused else v.sender
    return Finding(
        code,
        "Exchange refused to send from this address (SendAsDenied)",
        f"The mailbox {v.mailbox} may not send as {sender}.",
        (
            "Sender Email differs from the Username mailbox.",
            "'Use user's email as sender' is on, but the mailbox has no Send As permission for users.",
        ),
        (
            Fix("Make Sender Email the same address as Username, or turn off 'Use user's email as sender'."),
            Fix(
                "Or grant Send As on that address to the application:",
                v.add_send_as(sender),
            ),
        ),
        "send-as",
    )


@_entry(_SMTP, "430-4.2.0")
def _mailbox_logon_failure(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        "Exchange could not open the mailbox",
        f"Authentication worked but the application cannot open {v.mailbox}.",
        ("The FullAccess permission is missing or still propagating.", "The mailbox has no licence."),
        (
            Fix(
                "Give the application full access to the mailbox:",
                v.add_mailbox_permission,
            ),
        ),
        "mailbox-permission",
    )


@_entry(_SMTP, "501-5.5.124")
def _bad_user(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        "The username is not a valid mailbox address",
        f"Exchange did not accept '{v.mailbox}' as the mailbox to authenticate.",
        ("Username must be the full address of the mailbox the application sends from.",),
        (Fix("Enter the mailbox's primary SMTP address in Username (and Sender Email)."),),
        "configure",
    )


def _smtp_transient(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        "The mail server closed the session for now",
        f"The server answered: {reply or code}",
        ("Session time limit, throttling, or a temporary problem at the server.",),
        (Fix("Test again in a few minutes; if it persists, check the server's service health."),),
        "configure",
    )


def _smtp_other(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        "The mail server refused the request",
        f"The server answered: {reply or code}",
        (),
        (Fix("Read the server's reply in the technical details; it names the refused value."),),
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
