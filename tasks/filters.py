import django_filters

from .models import Task


class TaskFilter(django_filters.FilterSet):
    """`?completed=true|false`; any other value is a 400, not silently ignored."""

    completed = django_filters.TypedChoiceFilter(
        choices=[("true", "true"), ("false", "false")],
        coerce=lambda value: value == "true",
        help_text="Only completed (true) or only pending (false) tasks.",
    )

    class Meta:
        model = Task
        fields = ["completed"]
