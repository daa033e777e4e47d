"""Microsoft national clouds: where to ask for a token and where to send mail."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _


@dataclass(frozen=True)
class Cloud:
    label: str | Promise
    authority_host: str
    scope: str
    smtp_host: str
    graph_host: str = "graph.microsoft.com"

    @property
    def token_audience(self) -> str:
        return self.scope.removesuffix("/.default")

    @property
    def graph_scope(self) -> str:
        return f"https://{self.graph_host}/.default"


CLOUDS: dict[str, Cloud] = {
    "global": Cloud(
        _("Global (Microsoft 365, GCC)"),
        "https://login.microsoftonline.com",
        "https://outlook.office365.com/.default",
        "smtp.office365.com",
        "graph.microsoft.com",
    ),
    "usgov": Cloud(
        _("US Government (GCC High)"),
        "https://login.microsoftonline.us",
        "https://outlook.office365.us/.default",
        "smtp.office365.us",
        "graph.microsoft.us",
    ),
    "china": Cloud(
        _("China (operated by 21Vianet)"),
        "https://login.partner.microsoftonline.cn",
        "https://partner.outlook.cn/.default",
        "smtp.partner.outlook.cn",
        "microsoftgraph.chinacloudapi.cn",
    ),
}
DEFAULT_CLOUD = "global"
MICROSOFT365_PORT = 587
