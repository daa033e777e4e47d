"""History retention: the newest MAILADMIN_HISTORY_KEEP rows of a history table are kept."""

from __future__ import annotations

from django.conf import settings
from django.db import models


def prune(model: type[models.Model], keep: int | None = None) -> int:
    """Delete all but the newest ``keep`` rows (default MAILADMIN_HISTORY_KEEP) of ``model``,
    newest by primary key; returns how many were deleted. One indexed query when nothing is due."""
    keep = settings.MAILADMIN_HISTORY_KEEP if keep is None else keep
    cutoff = list(model.objects.order_by("-pk").values_list("pk", flat=True)[keep : keep + 1])
    if not cutoff:
        return 0
    deleted, _ = model.objects.filter(pk__lte=cutoff[0]).delete()
    return deleted
