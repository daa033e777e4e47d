"""Exchange Online's readings of SMTP replies: the setup steps of SMTP with OAuth 2.0.

Consulted before settings_app.findings.smtp when the transport is Exchange Online SMTP.
"""

from __future__ import annotations

import re
from dataclasses import replace

from django.utils.translation import gettext as _

from settings_app.findings import smtp
from settings_app.findings.base import Finding, Fix, SetupValues, Table, entry

TABLE: Table = {}


@entry(TABLE, "dns")
def _exchange_dns(code: str, v: SetupValues, reply: str) -> Finding:
    fix = Fix(_("For Microsoft 365 the server is smtp.office365.com (Global cloud)."))
    return replace(smtp.smtp_dns(code, v, reply), fixes=(fix,))


@entry(TABLE, "refused", "unreachable")
def _exchange_refused(code: str, v: SetupValues, reply: str) -> Finding:
    return replace(
        smtp.smtp_refused(code, v, reply),
        causes=(
            _("The port is wrong (Microsoft 365 uses 587)."),
            _("A firewall rejects outbound connections to it."),
        ),
    )


@entry(TABLE, "starttls-unsupported")
def _exchange_no_starttls(code: str, v: SetupValues, reply: str) -> Finding:
    generic = smtp.no_starttls(code, v, reply)
    return replace(
        generic,
        causes=(_("The server or port is not Exchange Online's submission service."), *generic.causes[1:]),
        fixes=(Fix(_("Use smtp.office365.com on port 587 for Microsoft 365.")), *generic.fixes[1:]),
    )


@entry(TABLE, "tls-hostname")
def _exchange_tls_hostname(code: str, v: SetupValues, reply: str) -> Finding:
    return replace(
        smtp.smtp_tls_hostname(code, v, reply),
        fixes=(Fix(_("Enter the name the certificate is issued for (for Microsoft 365: smtp.office365.com).")),),
    )


@entry(TABLE, "xoauth2-unsupported", "504-5.7.4")
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


@entry(TABLE, "535-5.7.3", "535")
def _auth_unsuccessful(code: str, v: SetupValues, reply: str) -> Finding:
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


@entry(TABLE, "535-5.7.139")
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
    graph_fix = Fix(
        _(
            "Or leave SMTP AUTH off, as Microsoft advises, and send through Microsoft Graph instead: it needs no "
            "SMTP AUTH. Choose the protocol Microsoft 365 (Graph API)."
        ),
        link="?protocol=graph_microsoft365",
    )
    return Finding(
        code,
        _("SMTP AUTH is disabled for the organisation") if tenant_wide else _("SMTP AUTH is disabled for the mailbox"),
        _("Exchange Online has authenticated SMTP switched off for the whole tenant.")
        if tenant_wide
        else _("Exchange Online has authenticated SMTP switched off for %(mailbox)s.") % {"mailbox": v.mailbox},
        (_("SMTP AUTH is off by default in new tenants and mailboxes."),),
        (tenant_fix, mailbox_fix, graph_fix) if tenant_wide else (mailbox_fix, tenant_fix),
        "smtp-auth",
        variant="tenant" if tenant_wide else "mailbox",
    )


@entry(TABLE, "554-5.2.252", "550-5.7.60", "554-5.2.0")
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


@entry(TABLE, "430-4.2.0")
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


@entry(TABLE, "501-5.5.124")
def _bad_user(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("The username is not a valid mailbox address"),
        _("Exchange did not accept '%(mailbox)s' as the mailbox to authenticate.") % {"mailbox": v.mailbox},
        (_("Username must be the full address of the mailbox the application sends from."),),
        (Fix(_("Enter the mailbox's primary SMTP address in Username (and Sender Email).")),),
        "configure",
    )
