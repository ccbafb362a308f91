from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Length, Trim
from django.db.models.lookups import GreaterThan, LessThanOrEqual

TITLE_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 1000


class TaskQuerySet(models.QuerySet):
    def owned_by(self, user):
        return self.filter(owner=user)

    def with_status(self, completed):
        return self.filter(completed=completed)

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
        ]

    def __str__(self):
        return self.title
