from django.apps import AppConfig


class SettingsAppConfig(AppConfig):
    name = "settings_app"
    verbose_name = "Outgoing email"

    def ready(self) -> None:
        # Connects the receivers that drop cached tokens when the settings are saved.
        from settings_app import token_cache  # noqa: F401
