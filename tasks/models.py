from datetime import UTC, datetime

import orjson
from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.fields.json import KeyTransform
from django.db.models.functions import Cast, Coalesce, Length, Trim
from django.db.models.lookups import GreaterThan, LessThanOrEqual, Regex

TITLE_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 1000
MAX_TAGS = 10
TAG_MAX_LENGTH = 32
TAG_CHARACTERS = "a-z0-9_-"
# Where a task with no due date sorts: after every due date a client may give
# (`due_at` is at most DUE_MAX, so one period later still fits in a datetime).
NO_DUE_DATE = datetime(9999, 12, 31, tzinfo=UTC)
DUE_MIN = datetime(1900, 1, 1, tzinfo=UTC)
DUE_MAX = datetime(9998, 12, 31, tzinfo=UTC)

# The text both databases store a tag list as (json.dumps and jsonb's text agree:
# `["a", "b"]`): at most MAX_TAGS lower-case tags of 1..TAG_MAX_LENGTH characters.
_TAG = f'"[{TAG_CHARACTERS}]{{1,{TAG_MAX_LENGTH}}}"'
TAGS_TEXT = rf"^\[({_TAG}(, {_TAG}){{0,{MAX_TAGS - 1}}})?\]$"
# A tag that occurs twice in that text (a back reference: PostgreSQL's and Python's
# regular expressions both have them).
TAGS_REPEATED = rf'"([{TAG_CHARACTERS}]+)".*"\1"'


class Priority(models.TextChoices):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


class Repeat(models.TextChoices):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


class ContainsAll(models.Lookup):
    """`tags__contains_all=[...]`: the JSON list holds every one of the given strings.

    PostgreSQL: jsonb containment (`@>`), which the GIN index on `tags` answers
    (migration 0003). SQLite has no JSON containment operator: every wanted value
    is looked for in `json_each` of the stored list.
    """

    lookup_name = "contains_all"

    def get_prep_lookup(self):
        return list(self.rhs)

    def get_db_prep_lookup(self, value, connection):
        return ("%s", [self.lhs.output_field.get_db_prep_value(value, connection)])

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        if connection.vendor == "postgresql":
            return f"{lhs} @> {rhs}::jsonb", (*lhs_params, *rhs_params)
        return (
            f"NOT EXISTS (SELECT 1 FROM json_each({rhs}) AS wanted WHERE wanted.value "
            f"NOT IN (SELECT stored.value FROM json_each({lhs}) AS stored))",
            (*rhs_params, *lhs_params),
        )


class TagsField(models.JSONField):
    """A JSON list of tags, with the `contains_all` lookup on both databases."""

    def from_db_value(self, value, expression, connection):
        # A stored list of short strings, parsed for every row of every task page:
        # orjson does it several times faster than the json module Django uses.
        if isinstance(value, str) and not isinstance(expression, KeyTransform):
            return orjson.loads(value)
        return super().from_db_value(value, expression, connection)


TagsField.register_lookup(ContainsAll)


class TaskQuerySet(models.QuerySet):
    def owned_by(self, user):
        return self.filter(owner=user)

    def with_status(self, completed):
        return self.filter(completed=completed)

    def with_priority(self, priority):
        return self.filter(priority=priority)

    def with_tags(self, tags):
        """Tasks carrying every one of `tags`."""
        return self.filter(tags__contains_all=sorted(set(tags))) if tags else self

    def due_between(self, after=None, before=None):
        """Tasks due at or after `after` and before `before` (either may be None);
        a task with no due date never matches. Filters `due_rank`, which the
        due-date indexes lead with after the owner."""
        tasks = self.filter(due_at__isnull=False)
        if after is not None:
            tasks = tasks.filter(due_rank__gte=after)
        if before is not None:
            tasks = tasks.filter(due_rank__lt=before)
        return tasks

    def search(self, text):
        """Tasks with every word of `text` in their title or description, ignoring case.

        The one meaning of task search: the API's `?search=`, the `list_tasks` tool,
        the MCP server and the admin all come here.
        """
        for word in text.split():
            self = self.filter(Q(title__icontains=word) | Q(description__icontains=word))
        return self


class Task(models.Model):
    """One item of a user's todo list."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="tasks",
        # The composite indexes below all lead with owner and serve its lookups.
        db_index=False,
    )
    title = models.CharField(max_length=TITLE_MAX_LENGTH)
    description = models.CharField(max_length=DESCRIPTION_MAX_LENGTH, blank=True, default="")
    completed = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    due_at = models.DateTimeField(null=True, blank=True)
    priority = models.CharField(max_length=6, choices=Priority, default=Priority.NORMAL)
    tags = TagsField(default=list, blank=True)
    # null, not "": API.md says a task that does not repeat has `repeat: null`.
    repeat = models.CharField(max_length=7, choices=Repeat, null=True, blank=True)  # noqa: DJ001
    # The id of the occurrence this one follows, unique: completing a repeating task
    # creates its next occurrence once, whatever retries or races. A plain column,
    # not a foreign key, so deleting tasks stays one statement (ids are never reused).
    follows = models.BigIntegerField(null=True, blank=True, unique=True, editable=False)
    # Sort keys the database keeps: keyset pages need a non-null key (a task with no
    # due date sorts last) and priorities in their order, not the alphabet's.
    due_rank = models.GeneratedField(
        expression=Coalesce("due_at", models.Value(NO_DUE_DATE)),
        output_field=models.DateTimeField(),
        db_persist=True,
    )
    priority_rank = models.GeneratedField(
        expression=models.Case(
            models.When(priority=Priority.HIGH, then=models.Value(2)),
            models.When(priority=Priority.LOW, then=models.Value(0)),
            default=models.Value(1),
        ),
        output_field=models.SmallIntegerField(),
        db_persist=True,
    )

    objects = TaskQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # A user's tasks by creation (either direction), optionally by status.
            models.Index(fields=["owner", "created_at", "id"], name="task_owner_created"),
            models.Index(
                fields=["owner", "completed", "created_at", "id"],
                name="task_owner_status_created",
            ),
            models.Index(fields=["owner", "updated_at", "id"], name="task_owner_updated"),
            # ?ordering=due_at (also filtered by status: "what is due") and ?due_*=.
            models.Index(fields=["owner", "due_rank", "id"], name="task_owner_due"),
            models.Index(
                fields=["owner", "completed", "due_rank", "id"], name="task_owner_status_due"
            ),
            # ?ordering=-priority: high first, then the most recent.
            models.Index(
                fields=["owner", "priority_rank", "created_at", "id"], name="task_owner_priority"
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=GreaterThan(Length(Trim("title")), 0),
                name="task_title_not_blank",
            ),
            models.CheckConstraint(
                condition=LessThanOrEqual(Length("title"), TITLE_MAX_LENGTH),
                name="task_title_max_length",
            ),
            models.CheckConstraint(
                condition=LessThanOrEqual(Length("description"), DESCRIPTION_MAX_LENGTH),
                name="task_description_max_length",
            ),
            models.CheckConstraint(
                condition=Q(priority__in=Priority.values), name="task_priority_valid"
            ),
            models.CheckConstraint(
                condition=Q(repeat__isnull=True)
                | Q(repeat__in=Repeat.values, due_at__isnull=False),
                name="task_repeat_needs_due_at",
            ),
            models.CheckConstraint(
                condition=Regex(Cast("tags", models.TextField()), TAGS_TEXT)
                & ~Regex(Cast("tags", models.TextField()), TAGS_REPEATED),
                name="task_tags_valid",
            ),
        ]

    def __str__(self):
        return self.title
