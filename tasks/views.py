from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import filters, status, viewsets
from rest_framework.response import Response

from core.compiled import Param

from . import services
from .filters import FilterBackend, TaskFilter
from .models import Task
from .serializers import TaskSerializer, task_data

# A page is read as named tuples, not model instances (task_data reads either):
# building the instances costs more than the query (bench/README.md).
TASK_ROW_FIELDS = ("id", "title", "description", "completed", "created_at", "updated_at")
# Filters whose presence takes a list off the compiled path (see TaskViewSet.list).
FILTER_PARAMS = (*TaskFilter.base_filters, filters.SearchFilter.search_param)


def task_rows():
    """Page rows of the tasks of the owner given as the parameter `owner_id`."""
    owner = Param("owner_id", Task._meta.get_field("owner"))
    return Task.objects.owned_by(owner).values_list(*TASK_ROW_FIELDS, named=True)


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
                description="Text to find in title or description, case-insensitively.",
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
    filter_backends = [FilterBackend, filters.SearchFilter]
    filterset_class = TaskFilter
    search_fields = ["title", "description"]
    lookup_value_converter = "int"
    keyset_orderings = {
        "-created_at": ("-created_at", "-id"),
        "created_at": ("created_at", "id"),
        "-updated_at": ("-updated_at", "-id"),
        "updated_at": ("updated_at", "id"),
    }
    default_keyset_ordering = "-created_at"

    def get_queryset(self):
        return Task.objects.owned_by(self.request.user)

    def list(self, request, *args, **kwargs):
        # Unfiltered pages reuse their compiled query (bench/README.md).
        if any(name in request.query_params for name in FILTER_PARAMS):
            tasks = self.filter_queryset(task_rows())  # validates the filters now
            build, shape = (lambda: tasks), None
        else:
            build, shape = task_rows, "tasks"
        page = self.paginator.paginate(
            request,
            self,
            model=Task,
            build=build,
            values={"owner_id": request.user.pk},
            shape=shape,
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
        task = services.task_update(task=task, **serializer.validated_data)
        return Response(task_data(task))

    def destroy(self, request, *args, **kwargs):
        services.task_delete(owner=request.user, task_id=self.kwargs["pk"])
        return Response(status=status.HTTP_204_NO_CONTENT)
