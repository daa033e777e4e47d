"""What every findings table is made of: a Finding, its fixes, and the administrator's values.

A table maps an error code to a builder ``(code, values, reply) -> Finding``; each who can
raise codes (Entra ID, SMTP servers, Exchange Online) has its own table module, and
settings_app.diagnosis picks the tables by who raised the code. Builders are pure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from settings_app import assertions
from settings_app.clouds import CLOUDS, DEFAULT_CLOUD
from settings_app.values import CertificateCredential, ConnectionSettings, Credential, FederatedAssertion

ENTERPRISE_OBJECT_ID = "<Object ID from Enterprise applications>"
# The RBAC for Applications management scope the setup guide creates for the sending mailboxes.
GRAPH_SCOPE_NAME = "mailadmin senders"


@dataclass(frozen=True)
class Fix:
    """``link`` is a query string for the settings page (``?protocol=...``), "" for none."""

    text: str
    command: str = ""
    link: str = ""


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


def ps_quote(value: str) -> str:
    """A PowerShell single-quoted string."""
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class CredentialValues:
    """What the credential's findings quote: the certificate's thumbprint, the federated assertion's
    file, issuer, subject, audience and algorithm (decoded from the file; never the assertion)."""

    kind: str = "secret"
    thumbprint: str = ""
    expires_on: str = ""
    token_file: str = ""
    issuer: str = ""
    subject: str = ""
    audience: str = ""
    algorithm: str = ""
    assertion_expires_at: str = ""

    @classmethod
    def of(cls, credential: Credential) -> CredentialValues:
        if isinstance(credential, CertificateCredential):
            expires_on = f"{credential.not_after:%Y-%m-%d}" if credential.not_after else ""
            return cls(credential.kind, thumbprint=credential.thumbprint, expires_on=expires_on)
        if isinstance(credential, FederatedAssertion):
            try:
                claims = assertions.inspect(credential.token_file)
            except assertions.AssertionUnavailable:
                return cls(credential.kind, token_file=credential.token_file or "<AZURE_FEDERATED_TOKEN_FILE>")
            expires = f"{claims.expires_at:%Y-%m-%d %H:%M:%S} UTC" if claims.expires_at else ""
            return cls(
                credential.kind,
                token_file=credential.token_file,
                issuer=claims.issuer or "<issuer>",
                subject=claims.subject or "<subject>",
                audience=claims.audience or assertions.DEFAULT_AUDIENCE,
                algorithm=claims.algorithm,
                assertion_expires_at=expires,
            )
        return cls(credential.kind)


@dataclass(frozen=True)
class SetupValues:
    """The administrator's values, and the PowerShell commands of the setup guide filled with them."""

    mailbox: str
    client_id: str
    tenant: str
    sender: str
    server: str
    port: int
    protocol: str = ""
    graph_host: str = CLOUDS[DEFAULT_CLOUD].graph_host
    credential: CredentialValues = field(default_factory=lambda: CredentialValues())

    @classmethod
    def of(cls, config: ConnectionSettings) -> SetupValues:
        return cls(
            mailbox=config.username or "<mailbox>",
            client_id=config.client_id or "<Application (client) ID>",
            tenant=config.tenant_id or "<Directory (tenant) ID>",
            sender=config.sender_email or "<sender email>",
            server=config.server or "<server>",
            port=config.port,
            protocol=config.protocol,
            graph_host=CLOUDS.get(config.cloud, CLOUDS[DEFAULT_CLOUD]).graph_host,
            credential=CredentialValues.of(config.credential),
        )

    @property
    def _service_principal(self) -> str:
        return f"$sp = Get-ServicePrincipal | Where-Object AppId -eq {ps_quote(self.client_id)}"

    @property
    def find_service_principal(self) -> str:
        return f"{self._service_principal}\n$sp | Format-List"

    @property
    def new_service_principal(self) -> str:
        return f"New-ServicePrincipal -AppId {ps_quote(self.client_id)} -ObjectId {ps_quote(ENTERPRISE_OBJECT_ID)}"

    @property
    def add_mailbox_permission(self) -> str:
        return (
            f"{self._service_principal}\n"
            f"Add-MailboxPermission -Identity {ps_quote(self.mailbox)} -User $sp.Identity -AccessRights FullAccess"
        )

    @property
    def enable_mailbox_smtp_auth(self) -> str:
        return f"Set-CASMailbox -Identity {ps_quote(self.mailbox)} -SmtpClientAuthenticationDisabled $false"

    enable_tenant_smtp_auth = "Set-TransportConfig -SmtpClientAuthenticationDisabled $false"

    # --- Microsoft Graph: RBAC for Applications ---

    @property
    def new_graph_service_principal(self) -> str:
        return f"{self.new_service_principal} -DisplayName 'mailadmin'"

    @property
    def new_management_scope(self) -> str:
        restriction = ps_quote(f"PrimarySmtpAddress -eq {ps_quote(self.mailbox)}")
        return f"New-ManagementScope -Name {ps_quote(GRAPH_SCOPE_NAME)} -RecipientRestrictionFilter {restriction}"

    @property
    def new_mail_send_assignment(self) -> str:
        return (
            f"New-ManagementRoleAssignment -App {ps_quote(self.client_id)} -Role 'Application Mail.Send' "
            f"-CustomResourceScope {ps_quote(GRAPH_SCOPE_NAME)}"
        )

    @property
    def test_graph_authorization(self) -> str:
        identity, mailbox = ps_quote(self.client_id), ps_quote(self.mailbox)
        return f"Test-ServicePrincipalAuthorization -Identity {identity} -Resource {mailbox}"

    @property
    def test_application_access_policy(self) -> str:
        return f"Test-ApplicationAccessPolicy -Identity {ps_quote(self.mailbox)} -AppId {ps_quote(self.client_id)}"

    def grant_mailbox_send_as(self, sender: str) -> str:
        """Send As for the sending mailbox itself (Graph sends as the mailbox in the URL)."""
        identity, trustee = ps_quote(sender), ps_quote(self.mailbox)
        return f"Add-RecipientPermission -Identity {identity} -Trustee {trustee} -AccessRights SendAs"

    def add_send_as(self, sender: str) -> str:
        return (
            f"{self._service_principal}\n"
            f"Add-RecipientPermission -Identity {ps_quote(sender)} -Trustee $sp.Identity -AccessRights SendAs"
        )


Builder = Callable[[str, SetupValues, str], Finding]
Table = dict[str, Builder]


def entry(table: Table, *codes: str):
    def register(builder: Builder) -> Builder:
        for code in codes:
            table[code] = builder
        return builder

    return register


# --- Microsoft Entra ID (the "token" step) ---------------------------------------------
