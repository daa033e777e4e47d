"""History retention: the newest MAILADMIN_HISTORY_KEEP rows of a history table are kept."""

from __future__ import annotations

from django.conf import settings
from django.db import models


def _edge_pk(model: type[models.Model], ordering: str) -> int | None:
    # One query per end: SQLite answers a lone MIN or MAX from the index, not both at once.
    return model.objects.order_by(ordering).values_list("pk", flat=True).first()


def prune(model: type[models.Model], keep: int | None = None) -> int:
    """Delete all but the newest ``keep`` rows (default MAILADMIN_HISTORY_KEEP) of ``model``,
    newest by primary key; returns how many were deleted.

    Primary keys are distinct integers, so a table whose newest and oldest keys are at most
    ``keep`` apart holds at most ``keep`` rows: two index lookups, whatever the table's size.
    Otherwise the ``keep + 1``-th newest key is found by walking ``keep`` index entries (a cost
    bounded by ``keep``, not by the table) and every row up to it is deleted.
    """
    keep = settings.MAILADMIN_HISTORY_KEEP if keep is None else keep
    newest, oldest = _edge_pk(model, "-pk"), _edge_pk(model, "pk")
    if newest is None or newest - oldest < keep:
        return 0
    cutoff = list(model.objects.order_by("-pk").values_list("pk", flat=True)[keep : keep + 1])
    if not cutoff:
        return 0
    deleted, _ = model.objects.filter(pk__lte=cutoff[0]).delete()
    return deleted
