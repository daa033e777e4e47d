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

    @property
    def token_audience(self) -> str:
        return self.scope.removesuffix("/.default")


CLOUDS: dict[str, Cloud] = {
    "global": Cloud(
        _("Global (Microsoft 365, GCC)"),
        "https://login.microsoftonline.com",
        "https://outlook.office365.com/.default",
        "smtp.office365.com",
    ),
    "usgov": Cloud(
        _("US Government (GCC High)"),
        "https://login.microsoftonline.us",
        "https://outlook.office365.us/.default",
        "smtp.office365.us",
    ),
    "china": Cloud(
        _("China (operated by 21Vianet)"),
        "https://login.partner.microsoftonline.cn",
        "https://partner.outlook.cn/.default",
        "smtp.partner.outlook.cn",
    ),
}
DEFAULT_CLOUD = "global"
MICROSOFT365_PORT = 587
