"""What a saved value must be, on the model fields, so that forms, the admin, commands and
``full_clean()`` all refuse the same input."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.core.validators import DomainNameValidator
from django.utils.translation import gettext

from settings_app import hosts
from settings_app.values import CONTROL_CHARACTERS

GUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


def validate_no_control_characters(value: str) -> None:
    if CONTROL_CHARACTERS.search(value):
        raise ValidationError(gettext("Remove line breaks, tabs and other control characters."), code="control")


def validate_ascii(value: str) -> None:
    """smtplib sends commands and AUTH data as ASCII only (no SMTPUTF8)."""
    if not value.isascii():
        raise ValidationError(
            gettext(
                "Only plain ASCII can be sent to the mail server: remove accented letters, or use the "
                "domain's xn-- form."
            ),
            code="non_ascii",
        )


def validate_server(value: str) -> None:
    """A host name or a literal IPv4/IPv6 address in canonical form (no ``127.1``, ``0x7f000001``)."""
    if not hosts.is_valid_server_name(value):
        raise ValidationError(
            gettext("Enter a host name such as smtp.office365.com, or an IP address."), code="invalid_host"
        )


def validate_guid(value: str) -> None:
    if not GUID.match(value):
        raise ValidationError(
            gettext(
                "Enter a GUID like 00000000-0000-0000-0000-000000000000 "
                "(App registration > Overview > Application (client) ID)."
            ),
            code="invalid_guid",
        )


def validate_tenant(value: str) -> None:
    if GUID.match(value):
        return
    try:
        DomainNameValidator(accept_idna=False)(value)
    except ValidationError:
        raise ValidationError(
            gettext(
                "Enter the Directory (tenant) ID, a GUID, or the tenant's domain such as contoso.onmicrosoft.com."
            ),
            code="invalid_tenant",
        ) from None
