from django.apps import AppConfig


class CoreConfig(AppConfig):
    """The kit every app's API uses; its one table counts requests for the throttles.

    Also holds the admin's kit (adminkit.py) with its template and script."""

    name = "core"
