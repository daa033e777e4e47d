"""Microsoft Entra ID's codes (the token step): AADSTS errors and the identity service unreachable."""

from __future__ import annotations

from django.utils.translation import gettext as _

from settings_app.findings.base import Finding, Fix, SetupValues, Table, entry

TABLE: Table = {}
@entry(TABLE, "AADSTS7000215")
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


@entry(TABLE, "AADSTS7000222")
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


@entry(TABLE, "AADSTS700016")
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


@entry(TABLE, "AADSTS90002", "AADSTS900023")
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


@entry(TABLE, "AADSTS1002012", "AADSTS70011", "AADSTS500011")
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


@entry(TABLE, "AADSTS7000218")
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
    TABLE[_code] = _identity_unreachable


@entry(TABLE, "tls-untrusted", "tls-hostname", "tls-failed")
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


@entry(TABLE, "invalid-response", "invalid-authority")
def _identity_garbled(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("The identity service gave an answer that is not Entra ID's"),
        _("Something between this server and Microsoft answered instead of Entra ID."),
        (_("A proxy, captive portal or firewall page replaced the answer."),),
        (Fix(_("Check the proxy settings of this server (HTTPS_PROXY) and retry.")),),
        "configure",
    )


def identity_http_error(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("Microsoft Entra ID is having trouble"),
        _("The identity service answered with HTTP %(status)s.") % {"status": code.removeprefix("http-")},
        (_("A temporary outage at Microsoft, or a proxy error."),),
        (Fix(_("Wait a few minutes and test again; check the Microsoft 365 service health page.")),),
        "configure",
    )


def identity_other(code: str, v: SetupValues, reply: str) -> Finding:
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




# --- Certificate and federated credentials -------------------------------------------------

def _register_federated(v: SetupValues) -> Fix:
    c = v.credential
    return Fix(
        _(
            "In the Azure portal open App registrations > the app %(client_id)s > Certificates & secrets > "
            "Federated credentials > Add credential (scenario: Other issuer) and enter exactly: Issuer "
            "%(issuer)s, Subject identifier %(subject)s, Audience %(audience)s."
        )
        % {"client_id": v.client_id, "issuer": c.issuer, "subject": c.subject, "audience": c.audience}
    )


@entry(TABLE, "AADSTS700027")
def _certificate_not_registered(code: str, v: SetupValues, reply: str) -> Finding:
    c = v.credential
    if c.kind == "federated":
        return Finding(
            code,
            _("Entra ID could not verify the federated assertion's signature"),
            _("The assertion in %(file)s is not signed with a key its issuer %(issuer)s publishes.")
            % {"file": c.token_file, "issuer": c.issuer},
            (_("The issuer's signing keys changed, or the file holds a token from another issuer."),),
            (_register_federated(v), Fix(_("Press Save and test again."))),
            "federated-credential",
        )
    expired = "expired" in reply.lower()
    return Finding(
        code,
        _("The certificate has expired in Entra ID") if expired else _("The certificate is not uploaded to this app"),
        _(
            "Entra ID found no valid certificate with thumbprint %(thumbprint)s on application %(client_id)s, "
            "so it could not check the signed assertion."
        )
        % {"thumbprint": c.thumbprint or "?", "client_id": v.client_id},
        (
            _("The certificate was generated or uploaded here but not yet uploaded to the app registration."),
            _("It was uploaded to another app registration than Client ID %(client_id)s.")
            % {"client_id": v.client_id},
            _("The app registration lists another certificate (compare the thumbprints)."),
        ),
        (
            Fix(
                _(
                    "Download the certificate (certificate.pem) from this page, then in the Azure portal open "
                    "App registrations > the app %(client_id)s > Certificates & secrets > Certificates > Upload "
                    "certificate. The list must then show thumbprint %(thumbprint)s."
                )
                % {"client_id": v.client_id, "thumbprint": c.thumbprint or "?"}
            ),
            Fix(_("Press Save and test again.")),
        ),
        "certificate",
    )


@entry(TABLE, "AADSTS700024")
def _assertion_out_of_time(code: str, v: SetupValues, reply: str) -> Finding:
    c = v.credential
    fixes = [Fix(_("Check this server's clock: it must be in sync (NTP) within a few minutes."))]
    if c.kind == "federated":
        fixes.append(
            Fix(
                _(
                    "The assertion in %(file)s is valid until %(expires)s: make sure the platform renews the "
                    "file (Azure Workload Identity does so while the pod runs)."
                )
                % {"file": c.token_file, "expires": c.assertion_expires_at or "?"}
            )
        )
    return Finding(
        code,
        _("The assertion is outside its validity: check the server's clock"),
        _("Entra ID received a client assertion that is not yet valid, or no longer valid."),
        (
            _("This server's clock is wrong by more than a few minutes."),
            _("The federated token file is stale: nobody renews it."),
        ),
        tuple(fixes),
        "federated-credential" if c.kind == "federated" else "certificate",
    )


@entry(TABLE, "AADSTS700021")
def _assertion_for_another_client(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("The assertion was issued for another client"),
        _("The client assertion names another application than Client ID %(client_id)s.")
        % {"client_id": v.client_id},
        (_("Client ID does not match the app registration the credential belongs to."),),
        (
            Fix(
                _(
                    "Open App registrations > your app > Overview and copy 'Application (client) ID' into "
                    "Client ID."
                )
            ),
        ),
        "app-registration",
    )


@entry(TABLE, "AADSTS700211", "AADSTS700212", "AADSTS700213", "AADSTS70021")
def _no_federated_match(code: str, v: SetupValues, reply: str) -> Finding:
    c = v.credential
    mismatch = {
        "AADSTS700211": _("No federated credential of the app has the assertion's issuer %(value)s.")
        % {"value": c.issuer},
        "AADSTS700212": _("No federated credential of the app has the assertion's audience %(value)s.")
        % {"value": c.audience},
        "AADSTS700213": _("No federated credential of the app has the assertion's subject %(value)s.")
        % {"value": c.subject},
    }.get(code, _("No federated credential of the app matches the assertion's issuer, subject and audience."))
    return Finding(
        code,
        _("No federated credential matches the assertion"),
        mismatch,
        (
            _("The federated credential is not added to app %(client_id)s yet, or was added to another app.")
            % {"client_id": v.client_id},
            _("A value was typed differently (they must match exactly, including the trailing slash)."),
        ),
        (_register_federated(v), Fix(_("Press Save and test again."))),
        "federated-credential",
    )


@entry(TABLE, "AADSTS5002738")
def _assertion_algorithm(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("The assertion is not signed with RS256, RS384 or RS512"),
        _("Entra ID accepts client assertions signed with RSA (RS256, RS384, RS512) only; this one uses %(alg)s.")
        % {"alg": v.credential.algorithm or "?"},
        (_("The identity provider that writes the token file signs with another algorithm."),),
        (Fix(_("Configure the issuer of the token file to sign its tokens with RS256.")),),
        "federated-credential",
    )


@entry(TABLE, "certificate-expired")
def _certificate_expired_here(code: str, v: SetupValues, reply: str) -> Finding:
    c = v.credential
    return Finding(
        code,
        _("The certificate has expired"),
        _("The certificate %(thumbprint)s expired on %(date)s; no token was requested with it.")
        % {"thumbprint": c.thumbprint, "date": c.expires_on},
        (_("Certificates have an end date; this one has passed it."),),
        (
            Fix(
                _(
                    "Press 'Generate certificate' (or upload a new one), upload it to App registrations > the "
                    "app %(client_id)s > Certificates & secrets > Certificates, then press Save and test."
                )
                % {"client_id": v.client_id}
            ),
        ),
        "certificate",
    )


@entry(TABLE, "certificate-missing")
def _certificate_missing(code: str, v: SetupValues, reply: str) -> Finding:
    return Finding(
        code,
        _("No usable certificate is saved"),
        _("The certificate credential needs a certificate with its private key; none can be read."),
        (_("The encryption key changed or was lost, so the saved private key no longer decrypts."),),
        (
            Fix(
                _(
                    "Press 'Generate certificate' (or upload a new one), upload it to App registrations > the "
                    "app %(client_id)s > Certificates & secrets > Certificates, then press Save and test."
                )
                % {"client_id": v.client_id}
            ),
        ),
        "certificate",
    )


@entry(
    TABLE,
    "federated-token-not-configured",
    "federated-token-missing",
    "federated-token-unreadable",
    "federated-token-empty",
    "federated-token-malformed",
)
def _federated_token_file(code: str, v: SetupValues, reply: str) -> Finding:
    c = v.credential
    titles = {
        "federated-token-not-configured": _("No federated token file is configured"),
        "federated-token-missing": _("The federated token file does not exist"),
        "federated-token-unreadable": _("The federated token file cannot be read"),
        "federated-token-empty": _("The federated token file is empty"),
        "federated-token-malformed": _("The federated token file does not hold a JWT"),
    }
    return Finding(
        code,
        titles[code],
        _("A federated credential needs the assertion (a JWT) that the platform writes to %(file)s.")
        % {"file": c.token_file or "AZURE_FEDERATED_TOKEN_FILE"},
        (
            _("The pod does not use Azure Workload Identity (the label azure.workload.identity/use: \"true\")."),
            _("The panel's process cannot read the file (permissions), or the path is wrong."),
        ),
        (
            Fix(
                _(
                    "Set AZURE_FEDERATED_TOKEN_FILE (Azure Workload Identity sets it on AKS) or "
                    "MAILADMIN_FEDERATED_TOKEN_FILE to a file the panel's process can read, and restart it."
                )
            ),
            Fix(_("Or choose the certificate credential instead.")),
        ),
        "federated-credential",
    )


def fallback(code: str, v: SetupValues, reply: str) -> Finding:
    return (identity_http_error if code.startswith("http-") else identity_other)(code, v, reply)
