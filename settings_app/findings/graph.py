"""Microsoft Graph's codes (the dns, send and send_as steps of the Graph transport).

Graph's own error codes (``ErrorAccessDenied``, ``ErrorInvalidUser``...), ``http-<status>``
when the answer was not Graph's JSON, and the transport codes of a request to the Graph host.
"""

from __future__ import annotations

import re

from django.utils.translation import gettext as _

from settings_app.findings.base import Finding, Fix, SetupValues, Table, entry

TABLE: Table = {}
MAX_REQUEST_MB = 4


def _permission_fix() -> Fix:
    return Fix(
        _(
            "Azure portal > App registrations > your app > API permissions > Add a permission > Microsoft Graph > "
            "Application permissions > Mail.Send, then 'Grant admin consent'."
        )
    )


@entry(TABLE, "ErrorAccessDenied", "http-403")
def _access_denied(code: str, v: SetupValues, reply: str) -> Finding:
    roles = re.search(r"\[token roles: ([^\]]*)\]", reply)
    if roles is None or "Mail.Send" not in roles.group(1):
        return Finding(
            code,
            _("The application may not send mail (no Mail.Send permission)"),
            _("Microsoft Graph refused sendMail for %(mailbox)s: the token carries no Mail.Send role.")
            % {"mailbox": v.mailbox},
            (
                _("The application permission Microsoft Graph > Mail.Send was not added."),
                _("It was added, but admin consent was not granted."),
                _("Neither was the app given the role with RBAC for Applications for this mailbox."),
            ),
            (
                _permission_fix(),
                Fix(
                    _("Or, least privilege: grant Mail.Send for this mailbox only, with RBAC for Applications:"),
                    "\n".join((v.new_graph_service_principal, v.new_management_scope, v.new_mail_send_assignment)),
                ),
                Fix(_("Then press Save and test again.")),
            ),
            "graph-permission",
            variant="consent",
        )
    return Finding(
        code,
        _("The mailbox is outside the application's scope"),
        _(
            "The application has Mail.Send, but Exchange Online limits which mailboxes it may use, and "
            "%(mailbox)s is not among them."
        )
        % {"mailbox": v.mailbox},
        (
            _("An RBAC for Applications management scope does not include the mailbox."),
            _("An older Application Access Policy restricts the app to other mailboxes."),
        ),
        (
            Fix(_("Check what Exchange allows this app for the mailbox:"), v.test_graph_authorization),
            Fix(_("Include the mailbox in the app's management scope, for example:"), v.new_management_scope),
            Fix(
                _("With an Application Access Policy, check it, then add the mailbox to the policy's group:"),
                v.test_application_access_policy,
            ),
        ),
        "graph-rbac",
        variant="scope",
    )


@entry(TABLE, "ErrorInvalidUser", "MailboxNotEnabledForRESTAPI", "ResourceNotFound", "http-404")
def _unknown_mailbox(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("Microsoft Graph does not know the mailbox"),
        _("Graph found no mailbox for the Username %(mailbox)s in this tenant.") % {"mailbox": v.mailbox},
        (
            _("The Username is mistyped, or is an alias rather than the user principal name or primary address."),
            _("The user has no Exchange Online mailbox (no licence), or it is in another tenant."),
        ),
        (
            Fix(
                _(
                    "Enter the mailbox's user principal name or primary SMTP address as Username (Microsoft 365 "
                    "admin center > Users > the user)."
                )
            ),
        ),
        "graph-configure",
    )


@entry(TABLE, "ErrorSendAsDenied")
def _send_as_denied(code: str, v: SetupValues, reply: str) -> Finding:
    refused = re.search(r"\[From: ([^\]]+)\]", reply)
    sender = refused.group(1) if refused else v.sender
    return Finding(
        code,
        _("The mailbox may not send as this sender"),
        _(
            "Microsoft Graph sends from the mailbox %(mailbox)s; the message's From address is %(sender)s, "
            "and the mailbox has no Send As right on it."
        )
        % {"mailbox": v.mailbox, "sender": sender},
        (
            _("Sender email differs from Username."),
            _("'Use user's email as sender' is on and the mailbox may not send as that user."),
        ),
        (
            Fix(_("Use the same address for Sender email and Username, or grant Send As, for example:"),
                v.grant_mailbox_send_as(sender)),
        ),
        "graph-send-as",
    )


@entry(TABLE, "InvalidAuthenticationToken", "http-401")
def _token_refused(code: str, v: SetupValues, reply: str) -> Finding:
    audience = "audience" in reply.lower()
    return Finding(
        code,
        _("Microsoft Graph refused the token"),
        _("Graph did not accept the access token (401).")
        if not audience
        else _("The token was issued for another service than Microsoft Graph (wrong audience)."),
        (
            _("The token is for Exchange Online (https://outlook.office365.com), not Microsoft Graph."),
            _("The token has expired, or the server's clock is wrong."),
            _("The tenant or cloud does not match the mailbox's."),
        ),
        (
            Fix(
                _("The token's scope must be https://%(host)s/.default: check the Microsoft cloud setting.")
                % {"host": v.graph_host}
            ),
            Fix(_("Save the settings again (that drops cached tokens), then test again.")),
        ),
        "graph-configure",
        variant="audience" if audience else "",
    )


@entry(TABLE, "TooManyRequests", "ApplicationThrottled", "MailboxConcurrency", "http-429")
def _throttled(code: str, v: SetupValues, reply: str) -> Finding:
    seconds = re.search(r"Retry-After: (\d+)", reply)
    wait = seconds.group(1) if seconds else "?"
    return Finding(
        code,
        _("Microsoft Graph is throttling this application"),
        _(
            "Graph answered 429 Too Many Requests and asked to wait %(seconds)s s. The connection test does not "
            "wait it out; the email backend waits when the wait is short."
        )
        % {"seconds": wait},
        (
            _("Too many requests for the mailbox (about 10,000 per 10 minutes, 4 at a time)."),
            _("Another application shares the mailbox or the app registration."),
        ),
        (Fix(_("Try again in %(seconds)s s; spread large batches over time.") % {"seconds": wait}),),
    )


@entry(TABLE, "ErrorMessageSizeExceeded", "RequestEntityTooLarge", "http-413")
def _too_large(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("The message is too large for Microsoft Graph"),
        _("Graph takes about %(limit)s MB per sendMail request, MIME encoding included.") % {"limit": MAX_REQUEST_MB},
        (_("Large attachments: base64 makes a message a third larger."),),
        (Fix(_("Send smaller attachments, or links to files instead of the files.")),),
    )


@entry(
    TABLE,
    "http-500",
    "http-502",
    "http-503",
    "http-504",
    "ServiceUnavailable",
    "InternalServerError",
    "ErrorInternalServerError",
    "generalException",
    "UnknownError",
)
def _service_error(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("Microsoft Graph had a service error"),
        _("Graph could not process the request; nothing is wrong with the settings as far as it said."),
        (_("A transient outage or overload at Microsoft."),),
        (
            Fix(_("Try again in a few minutes.")),
            Fix(_("If it persists, check Service health in the Microsoft 365 admin center.")),
        ),
    )


@entry(TABLE, "dns")
def _dns(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("The Microsoft Graph host name cannot be resolved"),
        _("This server could not resolve %(host)s.") % {"host": v.graph_host},
        (_("This server has no DNS, or only an internal one."), _("Outbound traffic must go through a proxy.")),
        (Fix(_("Let this server resolve %(host)s, or set HTTPS_PROXY for its proxy.") % {"host": v.graph_host}),),
    )


@entry(TABLE, "refused", "unreachable", "timeout")
def _unreachable(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("Microsoft Graph cannot be reached"),
        _("No HTTPS connection to %(host)s could be made in time.") % {"host": v.graph_host},
        (_("A firewall blocks outbound HTTPS (port 443)."), _("Outbound traffic must go through a proxy.")),
        (Fix(_("Allow HTTPS to %(host)s, or set HTTPS_PROXY for the proxy.") % {"host": v.graph_host}),),
    )


@entry(TABLE, "tls-untrusted", "tls-hostname")
def _tls(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("The certificate of Microsoft Graph is not trusted"),
        _("The TLS certificate presented for %(host)s did not verify.") % {"host": v.graph_host},
        (_("A proxy or firewall inspects TLS with its own certificate authority."),),
        (Fix(_("Set MAILADMIN_CA_BUNDLE to a PEM file with that authority's certificate.")),),
    )


def fallback(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("Microsoft Graph refused the request"),
        _("Graph answered with the error %(code)s.") % {"code": code},
        (),
        (Fix(_("Look the code up in Microsoft Graph's error reference; the server's reply is below.")),),
    )
