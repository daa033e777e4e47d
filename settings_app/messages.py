"""The message a connection test sends."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from django.utils import timezone
from django.utils.translation import gettext


def connection_test_message(sender: str, recipient: str, note: str) -> bytes:
    """A short message from ``sender`` to ``recipient``; ``note`` says which server it went through."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = gettext("mailadmin test message")
    message["Date"] = format_datetime(timezone.now())
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message.set_content(
        gettext("This message was sent by the connection test of the outgoing email settings.") + "\n" + note + "\n"
    )
    return message.as_bytes()
