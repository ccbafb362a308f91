from datetime import UTC

import django_filters
from django import forms
from django_filters.constants import EMPTY_VALUES
from django_filters.rest_framework import DjangoFilterBackend
from django_filters.utils import translate_validation
from drf_spectacular.utils import extend_schema_field

from .models import DUE_MIN, MAX_TAGS, NO_DUE_DATE, Priority, Task
from .services import InvalidTask, clean_tags


class TagsField(forms.Field):
    """Every value of a repeated query parameter (`?tag=a&tag=b`), as stored tags."""

    widget = forms.SelectMultiple

    def to_python(self, value):
        if not value:
            return []
        if len(value) > MAX_TAGS:
            raise forms.ValidationError(f"Give at most {MAX_TAGS} tags.")
        try:
            return clean_tags(list(value))
        except InvalidTask as exc:
            # The detail quotes the client's text: passed as a parameter, never a format.
            raise forms.ValidationError("%(detail)s", params={"detail": exc.detail}) from None


@extend_schema_field({"type": "array", "items": {"type": "string"}})
class TagsFilter(django_filters.Filter):
    field_class = TagsField

    def filter(self, queryset, value):
        return queryset.with_tags(value) if value else queryset


class TaskFilter(django_filters.FilterSet):
    """The tasks list's filters. A value outside what a filter takes is a 400 naming
    the parameter, never silently ignored.

    - `?completed=true|false`
    - `?search=`: every word in the title or description (`TaskQuerySet.search`)
    - `?priority=low|normal|high`
    - `?tag=` (repeatable): tasks carrying every one of the tags
    - `?due_after=` / `?due_before=`: ISO 8601 instants (an offset is converted to
      UTC; none means UTC); due at or after / strictly before, so that two of them
      make the half-open span "today" is. A task with no due date never matches.
    """

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
    priority = django_filters.ChoiceFilter(
        choices=Priority.choices, help_text="Only tasks of this priority."
    )
    tag = TagsFilter(help_text="Only tasks with this tag; repeat it for tasks with all of them.")
    due_after = django_filters.IsoDateTimeFilter(
        method="filter_due_after", help_text="Tasks due at or after this instant."
    )
    due_before = django_filters.IsoDateTimeFilter(
        method="filter_due_before", help_text="Tasks due before this instant."
    )

    class Meta:
        model = Task
        fields = ["completed", "search", "priority"]

    def filter_search(self, queryset, name, value):
        return queryset.search(value)

    def filter_due_after(self, queryset, name, value):
        return queryset.due_between(after=in_due_range(value))

    def filter_due_before(self, queryset, name, value):
        return queryset.due_between(before=in_due_range(value))


def in_due_range(value):
    """`value` in UTC, moved into the span due dates can have (DUE_MIN to NO_DUE_DATE):
    the same answer, and no instant a database cannot take (year 1 at +05:00)."""
    try:
        value = value.astimezone(UTC)
    except OverflowError:
        return DUE_MIN if value.year < 2000 else NO_DUE_DATE
    return min(max(value, DUE_MIN), NO_DUE_DATE)


# TaskFilter's form, built once: its fields validate a list request's filters.
_FilterForm = type(
    "TaskFilterForm",
    (TaskFilter._meta.form,),
    {name: filter_.field for name, filter_ in TaskFilter.base_filters.items()},
)
# What a filter's cleaned value becomes in `task_page_rows`'s values.
_PAGE_VALUES = {
    "completed": ("completed", bool),
    "priority": ("priority", str),
    "tag": ("tags", lambda tags: sorted(set(tags))),
    "due_after": ("due_after", in_due_range),
    "due_before": ("due_before", in_due_range),
}


def page_filters(query_params):
    """The filters of a list request, validated as TaskFilter validates them (the
    same 400 naming the parameter), as `(values, search)`: `values` a dict of
    `selectors.task_page_rows` values for the filters given one, `search` the
    `?search=` text or None (a searched page is built per request, on the same
    compiled filters: `TaskViewSet.list`).
    """
    form = _FilterForm(data=query_params)
    if not form.is_valid():
        raise translate_validation(form.errors)
    values, search = {}, None
    for name, value in form.cleaned_data.items():
        if value in EMPTY_VALUES:
            continue
        if name == "search":
            search = value
            continue
        key, convert = _PAGE_VALUES[name]
        values[key] = convert(value)
    return values, search


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
