"""How a token claim reads on the page: a list claim (``roles``) as comma-separated text."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def claim_value(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(item) for item in value)
    return "" if value is None else str(value)
