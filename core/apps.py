from django.apps import AppConfig


class CoreConfig(AppConfig):
    """The kit every app uses; installed only for its admin templates and static files."""

    name = "core"
    verbose_name = "Core"
