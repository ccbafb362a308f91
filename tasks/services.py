"""Task rules: the one place that creates, changes and deletes tasks.

The API, the admin, the agent tools and the MCP server all call these. Every
function is scoped to an owner: a task of another user is `TaskNotFound`, exactly
as a task that does not exist, so callers cannot learn what others have.
"""

from django.db import transaction

from core.errors import DomainError, NotFound
from core.text import text_problem

from .models import DESCRIPTION_MAX_LENGTH, TITLE_MAX_LENGTH, Task
from .selectors import tasks_of


class TaskNotFound(NotFound):
    default_detail = "No such task."


class InvalidTask(DomainError):
    default_detail = "The task is not valid."


def clean_title(title):
    """The stored form of a title: stripped, 1..200 characters."""
    title = title.strip() if isinstance(title, str) else title
    return _checked(title, name="title", max_length=TITLE_MAX_LENGTH, min_length=1)


def clean_description(description):
    return _checked(description, name="description", max_length=DESCRIPTION_MAX_LENGTH)


def _checked(value, **rules):
    problem = text_problem(value, **rules)
    if problem:
        raise InvalidTask(problem)
    return value


def task_get(*, owner, task_id):
    try:
        return tasks_of(owner).get(pk=int(task_id))
    except (Task.DoesNotExist, ValueError, TypeError, OverflowError):
        raise TaskNotFound() from None


def task_create(*, owner, title, description="", completed=False):
    return Task.objects.create(
        owner=owner,
        title=clean_title(title),
        description=clean_description(description),
        completed=bool(completed),
    )


def task_update(*, task, title=None, description=None, completed=None):
    """Change the given fields of `task` (None leaves a field as it is)."""
    if title is not None:
        task.title = clean_title(title)
    if description is not None:
        task.description = clean_description(description)
    if completed is not None:
        task.completed = bool(completed)
    task.save()
    return task


def task_complete(*, owner, task_id):
    return task_update(task=task_get(owner=owner, task_id=task_id), completed=True)


@transaction.atomic
def task_delete(*, owner, task_id):
    """Delete one of the owner's tasks; returns the task as it was."""
    task = task_get(owner=owner, task_id=task_id)
    task_pk = task.pk
    task.delete()
    task.pk = task_pk
    return task


@transaction.atomic
def task_delete_all(*, owner):
    """Delete every task of `owner` in one statement (account deletion)."""
    return tasks_of(owner).delete()[0]
