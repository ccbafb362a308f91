from rest_framework import serializers

from core.fields import StrictBooleanField, StrictCharField

from . import services
from .models import (
    DESCRIPTION_MAX_LENGTH,
    MAX_TAGS,
    TAG_MAX_LENGTH,
    TITLE_MAX_LENGTH,
    Priority,
    Repeat,
    Task,
)
from .selectors import TASK_FIELDS, task_values


class TaskSerializer(serializers.ModelSerializer):
    """A task of the caller's todo list.

    The rules of each field are the services' (`tasks.services.clean_*`); a value
    they refuse is a 400 naming the field.
    """

    # Input is validated here; output is built by task_data (the hot path).

    title = StrictCharField(max_length=TITLE_MAX_LENGTH)
    description = StrictCharField(
        max_length=DESCRIPTION_MAX_LENGTH, allow_blank=True, required=False, trim_whitespace=False
    )
    completed = StrictBooleanField(required=False)
    due_at = serializers.DateTimeField(
        allow_null=True, required=False, help_text="When the task is due (ISO 8601), or null."
    )
    priority = serializers.ChoiceField(choices=Priority.choices, required=False)
    tags = serializers.ListField(
        child=StrictCharField(max_length=TAG_MAX_LENGTH, trim_whitespace=False),
        max_length=MAX_TAGS,
        required=False,
        help_text=f"At most {MAX_TAGS} distinct tags of letters, digits, '-' and '_' "
        "(stored lower-case).",
    )
    repeat = serializers.ChoiceField(
        choices=Repeat.choices,
        allow_null=True,
        required=False,
        help_text="Completing a repeating task creates its next occurrence; needs a due_at.",
    )

    class Meta:
        model = Task
        fields = TASK_FIELDS
        read_only_fields = ["id", "created_at", "updated_at"]

    def validate_due_at(self, value):
        return self._cleaned(services.clean_due_at, value)

    def validate_tags(self, value):
        return self._cleaned(services.clean_tags, value)

    def validate(self, attrs):
        instance = self.instance
        repeat = attrs.get("repeat", instance.repeat if instance else None)
        due_at = attrs.get("due_at", instance.due_at if instance else None)
        try:
            services.check_repeat(repeat=repeat, due_at=due_at)
        except services.InvalidTask as exc:
            raise serializers.ValidationError({exc.field: [exc.detail]}) from None
        return attrs

    @staticmethod
    def _cleaned(clean, value):
        try:
            return clean(value)
        except services.InvalidTask as exc:
            raise serializers.ValidationError(exc.detail) from None

    def to_representation(self, task):
        return task_data(task)


def task_data(task):
    """A task's API form, from a Task or a page row."""
    return dict(zip(TASK_FIELDS, task_values(task), strict=True))
