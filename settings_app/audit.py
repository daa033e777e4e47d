"""The audit log of settings changes. Secrets are recorded only as "changed"."""

from __future__ import annotations

from django.views.decorators.debug import sensitive_variables

from settings_app.fields import UnreadableSecret
from settings_app.models import OutgoingEmailSettings, SettingsChange
from settings_app.retention import prune

AUDITED_FIELDS = OutgoingEmailSettings.AUDITED_FIELDS
SECRET_FIELDS = OutgoingEmailSettings.SECRET_FIELDS
AUDIT_LOG_LENGTH = 20


def snapshot(settings: OutgoingEmailSettings) -> dict:
    """The audited values; secrets stay in memory only to detect a change."""
    return {name: getattr(settings, name) for name in AUDITED_FIELDS}


def _shown(value) -> str | int | bool | None:
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)


@sensitive_variables("before", "old", "new")
def record_change(before: dict, settings: OutgoingEmailSettings, user=None) -> SettingsChange | None:
    """Store what changed between ``before`` (a snapshot) and ``settings``; None if nothing did."""
    changes = []
    for name in AUDITED_FIELDS:
        old, new = before[name], getattr(settings, name)
        if old == new or (isinstance(old, UnreadableSecret) and isinstance(new, UnreadableSecret)):
            continue
        label = str(OutgoingEmailSettings._meta.get_field(name).verbose_name)
        if name in SECRET_FIELDS:
            changes.append({"field": name, "label": label, "old": None, "new": None, "secret": True})
        else:
            changes.append({"field": name, "label": label, "old": _shown(old), "new": _shown(new)})
    if not changes:
        return None
    change = SettingsChange.objects.create(
        user=user if user is not None and user.is_authenticated else None, changes=changes
    )
    prune(SettingsChange)
    return change


def recent_changes() -> list[SettingsChange]:
    return list(SettingsChange.objects.select_related("user")[:AUDIT_LOG_LENGTH])
