import functools

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.response import Response

from core.timezones import user_timezone

from . import selectors, services
from .filters import FilterBackend, TaskFilter, page_filters
from .models import Priority, Task
from .serializers import TaskSerializer, task_data

# The list's filter parameters: with none of them, a page needs no validation at all
# (TaskViewSet.list).
FILTER_PARAMS = tuple(TaskFilter.base_filters)


@extend_schema_view(
    list=extend_schema(
        description="The caller's tasks, page by page, newest first unless `?ordering=` says.",
        parameters=[
            OpenApiParameter(
                "completed",
                OpenApiTypes.BOOL,
                description="Only completed (true) or only pending (false) tasks.",
            ),
            OpenApiParameter(
                "search",
                OpenApiTypes.STR,
                description="Tasks with every word of this text in their title or "
                "description, ignoring case.",
            ),
            OpenApiParameter(
                "priority",
                OpenApiTypes.STR,
                enum=Priority.values,
                description="Only tasks of this priority.",
            ),
            OpenApiParameter(
                "tag",
                {"type": "array", "items": {"type": "string"}},
                style="form",
                explode=True,
                description="Only tasks with this tag; repeat it for tasks with all of them.",
            ),
            OpenApiParameter(
                "due_after",
                OpenApiTypes.DATETIME,
                description="Tasks due at or after this instant (ISO 8601).",
            ),
            OpenApiParameter(
                "due_before",
                OpenApiTypes.DATETIME,
                description="Tasks due before this instant (ISO 8601).",
            ),
        ],
    ),
    create=extend_schema(description="Add a task to the caller's list."),
    retrieve=extend_schema(description="One of the caller's tasks."),
    update=extend_schema(description="Replace a task's fields."),
    partial_update=extend_schema(description="Change some of a task's fields."),
    destroy=extend_schema(description="Delete a task."),
)
class TaskViewSet(viewsets.ModelViewSet):
    """The caller's tasks. Another user's task is 404 on every method."""

    serializer_class = TaskSerializer
    filter_backends = [FilterBackend]
    filterset_class = TaskFilter
    lookup_value_converter = "int"
    keyset_orderings = {
        "-created_at": ("-created_at", "-id"),
        "created_at": ("created_at", "id"),
        "-updated_at": ("-updated_at", "-id"),
        "updated_at": ("updated_at", "id"),
        # Soonest first, tasks with no due date last (their due_rank is NO_DUE_DATE).
        "due_at": ("due_rank", "id"),
        # High first, then the most recent.
        "-priority": ("-priority_rank", "-created_at", "-id"),
    }
    default_keyset_ordering = "-created_at"

    def get_queryset(self):
        return selectors.tasks_of(self.request.user)

    def list(self, request, *args, **kwargs):
        # A page's query is compiled once per shape (the filters present, the
        # ordering, first page or after a cursor, page size) and reused for every
        # owner and filter value, which are parameters. Only `?search=` pages are
        # compiled per request (bench/README.md says why), on the same filters.
        values = {"owner_id": request.user.pk}
        filters, search = (
            page_filters(request.query_params)
            if any(name in request.query_params for name in FILTER_PARAMS)
            else ({}, None)
        )
        build = selectors.task_page_rows
        if filters:
            build = functools.partial(build, **dict.fromkeys(sorted(filters), True))
            values.update(filters)
        if search:
            build = functools.partial(_searched, build, search)
        page = self.paginator.paginate(
            request, self, model=Task, build=build, values=values, reuse=not search
        )
        return self.get_paginated_response([task_data(task) for task in page])

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        task = services.task_create(owner=request.user, **serializer.validated_data)
        return Response(task_data(task), status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        task = self.get_object()
        serializer = self.get_serializer(
            task, data=request.data, partial=kwargs.get("partial", False)
        )
        serializer.is_valid(raise_exception=True)
        task = services.task_update(
            task=task,
            zone=functools.partial(user_timezone, request.user),
            **serializer.validated_data,
        )
        return Response(task_data(task))

    def destroy(self, request, *args, **kwargs):
        services.task_delete(owner=request.user, task_id=self.kwargs["pk"])
        return Response(status=status.HTTP_204_NO_CONTENT)


def _searched(build, search):
    """`build()`'s rows with every word of `search` (a page compiled per request)."""
    return build().search(search)
