"""Any SMTP server's replies and failures, in terms that hold for every mail server.

Exchange Online's own readings of the same codes are in settings_app.findings.exchange.
"""

from __future__ import annotations

from django.utils.translation import gettext as _

from settings_app.findings.base import Finding, Fix, SetupValues, Table, entry

TABLE: Table = {}


@entry(TABLE, "dns")
def smtp_dns(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("The mail server's name cannot be resolved"),
        _("DNS on this server does not know '%(server)s'.") % {"server": v.server},
        (_("The Server field has a typo."), _("This server's DNS cannot resolve external names.")),
        (Fix(_("Check the Server field for a typo, and that this server's DNS resolves the name.")),),
        "configure",
    )


@entry(TABLE, "not-allowed")
def _server_not_allowed(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("This panel may not connect to that server"),
        _("'%(server)s' is not in MAILADMIN_ALLOWED_SMTP_HOSTS, or resolves to an address outside it.")
        % {"server": v.server},
        (
            _("The settings were saved before the allow-list was set, or restored from a backup."),
            _("The name resolves to another address than the one the allow-list names."),
        ),
        (
            Fix(_("Enter an allowed server, or ask the operator to add it to MAILADMIN_ALLOWED_SMTP_HOSTS.")),
        ),
        "configure",
    )


@entry(TABLE, "invalid-host")
def _server_name_invalid(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("The server name is not valid"),
        _("'%(server)s' is neither a host name nor an IP address in its usual form.") % {"server": v.server},
        (_("A numeric form such as 2130706433 or 127.1 was entered, or the saved value was altered."),),
        (Fix(_("Enter a host name such as smtp.office365.com, or an IP address.")),),
        "configure",
    )


@entry(TABLE, "refused", "unreachable")
def smtp_refused(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("The mail server refused the connection"),
        _("Nothing accepted a connection on %(server)s:%(port)s.") % {"server": v.server, "port": v.port},
        (
            _("The port is wrong (mail submission uses 587 with STARTTLS, or 465 with SSL/TLS)."),
            _("A firewall rejects outbound connections to it."),
        ),
        (Fix(_("Use port 587 with STARTTLS, and allow outbound TCP 587 from this server.")),),
        "configure",
    )


@entry(TABLE, "timeout")
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


@entry(TABLE, "disconnected")
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


@entry(TABLE, "starttls-unsupported")
def no_starttls(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("The mail server does not offer STARTTLS"),
        _("%(server)s did not list STARTTLS after EHLO, so the connection cannot be encrypted.")
        % {"server": v.server},
        (
            _("The server or port is not a mail submission service."),
            _("A firewall or antivirus 'SMTP inspection' strips STARTTLS from the server's answer."),
        ),
        (
            Fix(_("Check the server and the port: mail submission with STARTTLS is port 587.")),
            Fix(_("Turn off SMTP inspection on the firewall between this server and the Internet.")),
        ),
        "configure",
    )


@entry(TABLE, "tls-failed")
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


@entry(TABLE, "tls-untrusted")
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


@entry(TABLE, "tls-hostname")
def smtp_tls_hostname(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("The certificate does not match the server name"),
        _("The certificate is valid, but not for the name '%(server)s'.") % {"server": v.server},
        (_("The Server field holds an IP address or an alias instead of the certificate's name."),),
        (Fix(_("Enter the name the certificate is issued for.")),),
        "configure",
    )


@entry(TABLE, "auth-unsupported")
def _no_auth(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("The mail server offers no authentication here"),
        _("%(server)s listed no AUTH mechanism this panel can use on this connection.") % {"server": v.server},
        (_("Many servers offer AUTH only over an encrypted connection."),),
        (Fix(_("Turn on STARTTLS (port 587) or SSL/TLS (port 465), or turn off secure authentication.")),),
        "configure",
    )


@entry(TABLE, "530-5.7.57", "530")
def _not_authenticated(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("The server requires authentication before sending"),
        _("The message was offered without a successful AUTH."),
        (_("'Use secure authentication' is off."),),
        (Fix(_("Turn on 'Use secure authentication' and fill in the credentials.")),),
        "configure",
    )


@entry(TABLE, "503-5.5.2", "503")
def _send_hello_first(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("The server wanted EHLO before AUTH"),
        _("The server refused AUTH because the conversation was not restarted after TLS."),
        (_("A device between this server and the mail server altered the conversation."),),
        (Fix(_("Test again; if it persists, check for SMTP inspection on your firewall.")),),
        "configure",
    )


@entry(TABLE, "non-ascii", "control-characters")
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


@entry(TABLE, "535-5.7.3", "535")
def _credentials_refused(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("The username or password was refused"),
        _("The mail server did not accept the credentials."),
        (_("The username or password is wrong."), _("The account may not send mail through this server.")),
        (Fix(_("Re-enter the password (it is write-only here) and check the username.")),),
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


def fallback(code: str, v: SetupValues, reply: str) -> Finding:
    return (_smtp_transient if code[:1] == "4" else _smtp_other)(code, v, reply)
