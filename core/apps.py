from django.apps import AppConfig


class CoreConfig(AppConfig):
    """The kit every app's API uses; its one table counts requests for the throttles."""

    name = "core"
