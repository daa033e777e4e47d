"""The transports by protocol, listed explicitly (as healthchecks lists its integrations)."""

from __future__ import annotations

from settings_app.transports import graph, smtp
from settings_app.transports.base import Transport

TRANSPORTS: dict[str, Transport] = {
    "smtp": smtp.PLAIN_SMTP,
    "smtp_microsoft365": smtp.EXCHANGE_ONLINE_SMTP,
    "graph_microsoft365": graph.MICROSOFT_GRAPH,
}


def transport_for(protocol: str) -> Transport:
    """The transport of a protocol; unknown protocols get plain SMTP (nothing else can be assumed)."""
    return TRANSPORTS.get(protocol, smtp.PLAIN_SMTP)


def all_step_labels() -> dict:
    """Every step name any transport uses, with its label (the first transport's, for a shared name)."""
    labels: dict = {}
    for transport in TRANSPORTS.values():
        for name, label in transport.labels.items():
            labels.setdefault(name, label)
    return labels
