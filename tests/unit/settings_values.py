"""Connection settings for the offline diagnosis tests."""

from __future__ import annotations

from settings_app.values import ClientSecret, ConnectionSettings

CLIENT_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"
MAILBOX = "noreply@contoso.com"


def connection_settings(protocol: str, **overrides) -> ConnectionSettings:
    """Microsoft 365 settings for ``protocol`` with made-up IDs, ``overrides`` applied."""
    values = dict(
        protocol=protocol,
        server="smtp.office365.com",
        port=587,
        connection_security="starttls",
        use_secure_auth=True,
        username=MAILBOX,
        sender_email=MAILBOX,
        client_id=CLIENT_ID,
        tenant_id="contoso.onmicrosoft.com",
        credential=ClientSecret("not-shown"),
    )
    values.update(overrides)
    return ConnectionSettings(**values)
