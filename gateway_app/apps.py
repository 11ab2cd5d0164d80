from django.apps import AppConfig


class GatewayAppConfig(AppConfig):
    name = "gateway_app"
    verbose_name = "Hermes gateway"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers system checks and the signal receivers that end logins; starts nothing
        # (no event loop exists yet).
        from . import checks  # noqa: F401
        from .auth import signals  # noqa: F401
