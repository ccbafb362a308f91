import django_filters

from .models import Task


class TaskFilter(django_filters.FilterSet):
    completed = django_filters.BooleanFilter(
        help_text="Only completed (true) or only pending (false) tasks."
    )

    class Meta:
        model = Task
        fields = ["completed"]
