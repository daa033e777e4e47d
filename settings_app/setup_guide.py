"""The Microsoft 365 setup guide as a checklist, filled with the administrator's values.

The steps are those of the settings' protocol: SMTP with OAuth 2.0, or Microsoft Graph.

Findings point at these steps by anchor (Finding.guide_step); the last test run
tells which steps it proved.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext as _

from settings_app.diagnosis import SetupValues

INSTALL_MODULE = (
    "Install-Module -Name ExchangeOnlineManagement\nImport-Module ExchangeOnlineManagement\nConnect-ExchangeOnline"
)


@dataclass(frozen=True)
class GuideStep:
    anchor: str
    title: str
    instructions: tuple[str, ...]
    commands: tuple[str, ...] = ()


GRAPH_PROTOCOL = "graph_microsoft365"


def guide_steps(v: SetupValues) -> list[GuideStep]:
    """The steps in order for the settings' protocol, in the active language (the commands are never translated)."""
    if v.protocol == GRAPH_PROTOCOL:
        return [*_graph_app_steps(v), *_credential_steps(v), *_graph_rbac_steps(v), *_graph_panel_steps(v)]
    return [*_entra_app_steps(v), *_exchange_steps(v), *_credential_steps(v), *_panel_steps(v)]


def _entra_app_steps(v: SetupValues) -> list[GuideStep]:
    return [
        GuideStep(
            "app-registration",
            _("Register the application in Microsoft Entra ID"),
            (
                _("Azure portal > App registrations > New registration; name it after this product."),
                _(
                    "From its Overview page copy Application (client) ID (yours: %(client_id)s) and "
                    "Directory (tenant) ID (yours: %(tenant)s) into this panel."
                )
                % {"client_id": v.client_id, "tenant": v.tenant},
            ),
        ),
        GuideStep(
            "api-permissions",
            _("Add the SMTP permission"),
            (
                _(
                    "API permissions > Add a permission > APIs my organization uses > Office 365 Exchange Online > "
                    "Application permissions > SMTP.SendAsApp."
                ),
            ),
        ),
        GuideStep(
            "admin-consent",
            _("Grant admin consent"),
            (_("Still under API permissions, press 'Grant admin consent for <your organisation>'."),),
        ),
    ]


def _exchange_steps(v: SetupValues) -> list[GuideStep]:
    return [
        GuideStep(
            "service-principal",
            _("Register the service principal in Exchange Online"),
            (
                _("In PowerShell, install the Exchange Online module and connect as an Exchange administrator."),
                _(
                    "Register the application's service principal. The Object ID is the one shown under "
                    "Enterprise applications (not App registrations) for the same application."
                ),
                _("Check it is listed:"),
            ),
            (INSTALL_MODULE, v.new_service_principal, v.find_service_principal),
        ),
        GuideStep(
            "mailbox-permission",
            _("Give the application full access to the mailbox"),
            (_("Allow the service principal to use the mailbox %(mailbox)s:") % {"mailbox": v.mailbox},),
            (v.add_mailbox_permission,),
        ),
        GuideStep(
            "smtp-auth",
            _("Turn on SMTP AUTH for the mailbox"),
            (
                _(
                    "Exchange Online has authenticated SMTP off by default. Turn it on for the mailbox; if the "
                    "organisation has it off too, turn it on there as well."
                ),
            ),
            (v.enable_mailbox_smtp_auth, v.enable_tenant_smtp_auth),
        ),
    ]


def _credential_steps(v: SetupValues) -> list[GuideStep]:
    """The step of the chosen credential only: a client secret, a certificate or a federated credential."""
    kind = v.credential.kind
    if kind == "certificate":
        return [
            GuideStep(
                "certificate",
                _("Upload the certificate"),
                (
                    _(
                        "On this panel press 'Generate certificate' (or upload your own), then download "
                        "certificate.pem."
                    ),
                    _("App registrations > your app > Certificates & secrets > Certificates > Upload certificate."),
                    _("The list then shows the thumbprint %(thumbprint)s; the private key never leaves this server.")
                    % {"thumbprint": v.credential.thumbprint or "<thumbprint>"},
                ),
            ),
        ]
    if kind == "federated":
        c = v.credential
        return [
            GuideStep(
                "federated-credential",
                _("Add a federated credential"),
                (
                    _(
                        "App registrations > your app > Certificates & secrets > Federated credentials > Add "
                        "credential (scenario: Kubernetes, or Other issuer)."
                    ),
                    _("Issuer: %(issuer)s. Subject identifier: %(subject)s. Audience: %(audience)s.")
                    % {
                        "issuer": c.issuer or "<issuer>",
                        "subject": c.subject or "<subject>",
                        "audience": c.audience or "api://AzureADTokenExchange",
                    },
                    _(
                        "The panel reads the assertion from AZURE_FEDERATED_TOKEN_FILE (or "
                        "MAILADMIN_FEDERATED_TOKEN_FILE) for every token request."
                    ),
                ),
            ),
        ]
    return [
        GuideStep(
            "client-secret",
            _("Create a client secret"),
            (
                _("App registrations > your app > Certificates & secrets > New client secret."),
                _(
                    "Copy the Value column at once (it is shown only now), not the Secret ID, and note its "
                    "expiry date in 'Secret expires on'."
                ),
            ),
        ),
    ]


def _panel_steps(v: SetupValues) -> list[GuideStep]:
    return [
        GuideStep(
            "configure",
            _("Fill in this panel"),
            (
                _(
                    "Protocol: SMTP Microsoft 365. Server: smtp.office365.com. Port: 587. Connection security: "
                    "STARTTLS."
                ),
                _("Username and Sender Email: the same mailbox (%(mailbox)s). 'Use user's email as sender': off.")
                % {"mailbox": v.mailbox},
                _("Client ID, Tenant ID and the credential from the steps above, then press Save and test."),
            ),
        ),
        GuideStep(
            "send-as",
            _("Optional: send as other users"),
            (
                _(
                    "With 'Use user's email as sender' on, grant the application Send As on every address it "
                    "may send from, for example:"
                ),
            ),
            (v.add_send_as("<user address>"),),
        ),
    ]


CREDENTIAL_ANCHORS = ("client-secret", "certificate", "federated-credential")


def _graph_app_steps(v: SetupValues) -> list[GuideStep]:
    registration, _smtp_permission, consent = _entra_app_steps(v)
    permission = GuideStep(
        "graph-permission",
        _("Add the Mail.Send permission"),
        (
            _(
                "API permissions > Add a permission > Microsoft Graph > Application permissions > Mail.Send "
                "(not the delegated one)."
            ),
        ),
    )
    return [registration, permission, consent]


def _graph_rbac_steps(v: SetupValues) -> list[GuideStep]:
    return [
        GuideStep(
            "graph-rbac",
            _("Strongly recommended: restrict the application to the sending mailboxes"),
            (
                _(
                    "An unscoped Mail.Send consent lets the application send as every mailbox in the tenant. "
                    "With RBAC for Applications in Exchange Online, grant it only for %(mailbox)s:"
                )
                % {"mailbox": v.mailbox},
                _(
                    "Register the service principal (the Object ID is the one under Enterprise applications), "
                    "create a management scope for the mailbox and assign the role 'Application Mail.Send' "
                    "within it; then check the result:"
                ),
                _(
                    "Role assignments add to consents in Entra ID: once the check passes, remove the Mail.Send "
                    "application permission (or its admin consent) from the app registration, so that only the "
                    "scoped role remains. Application Access Policies are the older way; do not create new ones."
                ),
            ),
            (
                INSTALL_MODULE,
                v.new_graph_service_principal,
                v.new_management_scope,
                v.new_mail_send_assignment,
                v.test_graph_authorization,
            ),
        ),
    ]


def _graph_panel_steps(v: SetupValues) -> list[GuideStep]:
    return [
        GuideStep(
            "graph-configure",
            _("Fill in this panel"),
            (
                _("Protocol: Microsoft 365 (Graph API). Server, port and connection security do not apply."),
                _("Username and Sender Email: the same mailbox (%(mailbox)s). 'Use user's email as sender': off.")
                % {"mailbox": v.mailbox},
                _("Client ID, Tenant ID and the credential from the steps above, then press Save and test."),
            ),
        ),
        GuideStep(
            "graph-send-as",
            _("Optional: send as other users"),
            (
                _(
                    "With 'Use user's email as sender' on, Graph sends from %(mailbox)s as each user: give the "
                    "mailbox Send As on every such address, for example:"
                )
                % {"mailbox": v.mailbox},
            ),
            (v.grant_mailbox_send_as("<user address>"),),
        ),
    ]


PROVEN_BY_GRAPH_STEP = {
    "token": ("app-registration", *CREDENTIAL_ANCHORS),
    "send": ("app-registration", "graph-permission", "admin-consent", *CREDENTIAL_ANCHORS, "graph-configure"),
    "send_as": ("graph-send-as",),
}
PROVEN_BY_STEP = {
    "token": ("app-registration", *CREDENTIAL_ANCHORS),
    "auth": (
        "app-registration",
        "api-permissions",
        "admin-consent",
        "service-principal",
        "mailbox-permission",
        "smtp-auth",
        *CREDENTIAL_ANCHORS,
        "configure",
    ),
    "send_as": ("send-as",),
}


def proven_anchors(steps: list[dict], protocol: str = "") -> set[str]:
    """Guide steps that a test run's passing steps prove done (Microsoft 365 only)."""
    by_step = PROVEN_BY_GRAPH_STEP if protocol == GRAPH_PROTOCOL else PROVEN_BY_STEP
    proven: set[str] = set()
    for step in steps:
        if step["status"] == "ok":
            proven.update(by_step.get(step["name"], ()))
    return proven
