"""From a failed step and its error code to what is wrong and how to fix it.

Pure functions over tables: no I/O. The tables are chosen by who raised the code: Microsoft
Entra ID for the token step, otherwise the transport's own sources in order (Exchange Online
SMTP reads a reply before any SMTP server does). Fixes are filled with the administrator's
own values; a placeholder is left only where we cannot know the value (the Enterprise
application's Object ID). Texts are in the active language; codes and commands never are.
"""

from __future__ import annotations

from settings_app.findings import entra, exchange, graph, smtp
from settings_app.findings.base import ENTERPRISE_OBJECT_ID, Builder, Finding, Fix, SetupValues, Table
from settings_app.transports import transport_for
from settings_app.values import ConnectionSettings

__all__ = ["ENTERPRISE_OBJECT_ID", "Finding", "Fix", "SetupValues", "diagnose"]

# Who raises codes: their table, and the builder for a code their table does not know.
SOURCES: dict[str, tuple[Table, Builder | None]] = {
    "entra": (entra.TABLE, entra.fallback),
    "exchange": (exchange.TABLE, None),
    "smtp": (smtp.TABLE, smtp.fallback),
    "graph": (graph.TABLE, graph.fallback),
}
IDENTITY_STEPS = {"token": ("entra",)}


def find(sources: tuple[str, ...], code: str, reply: str, values: SetupValues) -> Finding:
    """The first finding the ``sources``' tables give for ``code``, else the last one's fallback."""
    for source in sources:
        table, _ = SOURCES[source]
        builder = table.get(code) or table.get(code.split("-")[0])
        if builder is not None:
            return builder(code, values, reply)
    for source in reversed(sources):
        fallback = SOURCES[source][1]
        if fallback is not None:
            return fallback(code, values, reply)
    raise LookupError(f"no findings source among {sources} has a fallback")


def diagnose(step: str, code: str, reply: str, config: ConnectionSettings) -> Finding:
    """The finding for a failed ``step`` with error ``code`` and the server's ``reply``."""
    sources = IDENTITY_STEPS.get(step) or transport_for(config.protocol).finding_sources
    return find(sources, code, reply, SetupValues.of(config))
