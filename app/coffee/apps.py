"""App config for the coffee API."""

from django.apps import AppConfig


class CoffeeConfig(AppConfig):
    name = "coffee"
    verbose_name = "Coffee shop"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Connects the menu-cache invalidation receivers (see coffee.menu).
        from coffee import menu  # noqa: F401
