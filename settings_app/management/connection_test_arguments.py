"""The arguments every command that runs the connection test takes, checked the same way."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.core.validators import validate_email
from django.utils.translation import gettext


def add_test_arguments(parser) -> None:
    parser.add_argument("--to", metavar="ADDRESS", default="", help="Also send a test message to ADDRESS.")
    parser.add_argument(
        "--timeout", type=float, default=None, help="Whole-test budget in seconds (default MAILADMIN_TEST_TIMEOUT)."
    )


def checked_recipient(to: str) -> str:
    """``to`` if it is empty or an email address; CommandError otherwise."""
    if to:
        try:
            validate_email(to)
        except ValidationError:
            raise CommandError(gettext("--to: '%(address)s' is not a valid email address.") % {"address": to}) from None
    return to
