"""Mail the application sends on behalf of one of its users.

The sender rules live in the email backend (settings_app.backends), which knows
the saved settings; a message only says whose mail it is through
``ON_BEHALF_OF``. With "Use user's email as sender" on, such a message goes out
From the user's address; with it off, From the configured sender with Reply-To
the user's address. Mail without a user always goes out from the configured sender.
"""

from __future__ import annotations

from collections.abc import Sequence
from email.utils import formataddr

from django.core.mail import EmailMessage, EmailMultiAlternatives

ON_BEHALF_OF = "mailadmin_on_behalf_of"


def on_behalf_of(message: EmailMessage) -> str:
    """The address (possibly with a display name) of the user ``message`` is sent for, or ""."""
    return getattr(message, ON_BEHALF_OF, "") or ""


def user_address(user) -> str:
    """``"Full Name <email>"`` for a user with an email address, else ""."""
    email = (getattr(user, "email", "") or "").strip()
    if not email:
        return ""
    name = user.get_full_name().strip() if hasattr(user, "get_full_name") else ""
    return formataddr((name, email)) if name else email


def send_mail_as(
    user,
    subject: str,
    body: str,
    recipients: Sequence[str],
    *,
    html_message: str | None = None,
    fail_silently: bool = False,
    connection=None,
) -> int:
    """Send a message on behalf of ``user``; returns the number sent (1, or 0 when it failed silently).

    A user without an email address sends as the application (no Reply-To).
    Raises what the backend raises (settings_app.backends.OutgoingEmailError)
    unless ``fail_silently``.
    """
    message = EmailMultiAlternatives(subject, body, to=list(recipients), connection=connection)
    if html_message is not None:
        message.attach_alternative(html_message, "text/html")
    setattr(message, ON_BEHALF_OF, user_address(user))
    return message.send(fail_silently=fail_silently)
