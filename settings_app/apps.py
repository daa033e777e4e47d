from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SettingsAppConfig(AppConfig):
    name = "settings_app"
    verbose_name = _("Outgoing email")

    def ready(self) -> None:
        # Connects the receivers that drop cached tokens when the settings are saved.
        from settings_app import token_cache  # noqa: F401
