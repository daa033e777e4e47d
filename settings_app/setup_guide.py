"""The Microsoft 365 setup guide as a checklist, filled with the administrator's values.

Findings point at these steps by anchor (Finding.guide_step); the last test run
tells which steps it proved.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def guide_steps(v: SetupValues) -> list[GuideStep]:
    return [
        GuideStep(
            "app-registration",
            "Register the application in Microsoft Entra ID",
            (
                "Azure portal > App registrations > New registration; name it after this product.",
                f"From its Overview page copy Application (client) ID (yours: {v.client_id}) and "
                f"Directory (tenant) ID (yours: {v.tenant}) into this panel.",
            ),
        ),
        GuideStep(
            "api-permissions",
            "Add the SMTP permission",
            (
                "API permissions > Add a permission > APIs my organization uses > Office 365 Exchange Online > "
                "Application permissions > SMTP.SendAsApp.",
            ),
        ),
        GuideStep(
            "admin-consent",
            "Grant admin consent",
            ("Still under API permissions, press 'Grant admin consent for <your organisation>'.",),
        ),
        GuideStep(
            "service-principal",
            "Register the service principal in Exchange Online",
            (
                "In PowerShell, install the Exchange Online module and connect as an Exchange administrator.",
                "Register the application's service principal. The Object ID is the one shown under "
                "Enterprise applications (not App registrations) for the same application.",
                "Check it is listed:",
            ),
            (INSTALL_MODULE, v.new_service_principal, v.find_service_principal),
        ),
        GuideStep(
            "mailbox-permission",
            "Give the application full access to the mailbox",
            (f"Allow the service principal to use the mailbox {v.mailbox}:",),
            (v.add_mailbox_permission,),
        ),
        GuideStep(
            "smtp-auth",
            "Turn on SMTP AUTH for the mailbox",
            (
                "Exchange Online has authenticated SMTP off by default. Turn it on for the mailbox; if the "
                "organisation has it off too, turn it on there as well.",
            ),
            (v.enable_mailbox_smtp_auth, v.enable_tenant_smtp_auth),
        ),
        GuideStep(
            "client-secret",
            "Create a client secret",
            (
                "App registrations > your app > Certificates & secrets > New client secret.",
                "Copy the Value column at once (it is shown only now), not the Secret ID, and note its "
                "expiry date in 'Secret expires on'.",
            ),
        ),
        GuideStep(
            "configure",
            "Fill in this panel",
            (
                "Protocol: SMTP Microsoft 365. Server: smtp.office365.com. Port: 587. Connection security: "
                "STARTTLS.",
                f"Username and Sender Email: the same mailbox ({v.mailbox}). 'Use user's email as sender': off.",
                "Client ID, Tenant ID and Client secret from the steps above, then press Save and test.",
            ),
        ),
        GuideStep(
            "send-as",
            "Optional: send as other users",
            (
                "With 'Use user's email as sender' on, grant the application Send As on every address it "
                "may send from, for example:",
            ),
            (v.add_send_as("<user address>"),),
        ),
    ]


PROVEN_BY_STEP = {
    "token": ("app-registration", "client-secret"),
    "auth": (
        "app-registration",
        "api-permissions",
        "admin-consent",
        "service-principal",
        "mailbox-permission",
        "smtp-auth",
        "client-secret",
        "configure",
    ),
    "send_as": ("send-as",),
}


def proven_anchors(steps: list[dict]) -> set[str]:
    """Guide steps that a test run's passing steps prove done (Microsoft 365 only)."""
    proven: set[str] = set()
    for step in steps:
        if step["status"] == "ok":
            proven.update(PROVEN_BY_STEP.get(step["name"], ()))
    return proven
