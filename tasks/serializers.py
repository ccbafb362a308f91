from rest_framework import serializers

from core.fields import StrictBooleanField, StrictCharField

from .models import DESCRIPTION_MAX_LENGTH, TITLE_MAX_LENGTH, Task
from .selectors import TASK_FIELDS, task_values


class TaskSerializer(serializers.ModelSerializer):
    """A task of the caller's todo list."""

    # Input is validated here; output is built by task_data (the hot path).

    title = StrictCharField(max_length=TITLE_MAX_LENGTH)
    description = StrictCharField(
        max_length=DESCRIPTION_MAX_LENGTH, allow_blank=True, required=False, trim_whitespace=False
    )
    completed = StrictBooleanField(required=False)

    class Meta:
        model = Task
        fields = TASK_FIELDS
        read_only_fields = ["id", "created_at", "updated_at"]

    def to_representation(self, task):
        return task_data(task)


def task_data(task):
    """A task's API form, from a Task or a page row."""
    return dict(zip(TASK_FIELDS, task_values(task), strict=True))
