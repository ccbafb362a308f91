import django_filters
from django_filters.rest_framework import DjangoFilterBackend

from .models import Task


class TaskFilter(django_filters.FilterSet):
    """`?completed=true|false` (any other value is a 400, not silently ignored) and
    `?search=` (every word in the title or description: `TaskQuerySet.search`)."""

    completed = django_filters.TypedChoiceFilter(
        choices=[("true", "true"), ("false", "false")],
        coerce=lambda value: value == "true",
        help_text="Only completed (true) or only pending (false) tasks.",
    )

    search = django_filters.CharFilter(
        method="filter_search",
        help_text="Tasks with every word of this text in their title or description, "
        "ignoring case.",
    )

    class Meta:
        model = Task
        fields = ["completed", "search"]

    def filter_search(self, queryset, name, value):
        return queryset.search(value)


class FilterBackend(DjangoFilterBackend):
    """django-filter's backend, which builds the FilterSet only when it has work.

    A FilterSet builds and validates a form on every request (a tenth of a page-1
    read's CPU, bench/README.md); most list requests carry no filter parameter.
    """

    def filter_queryset(self, request, queryset, view):
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is None or not any(
            name in request.query_params for name in filterset_class.base_filters
        ):
            return queryset
        return super().filter_queryset(request, queryset, view)
