"""Task rules: the one place that creates, changes and deletes tasks.

The API, the admin, the agent tools and the MCP server all call these. Every
function is scoped to an owner: a task of another user is `TaskNotFound`, exactly
as a task that does not exist, so callers cannot learn what others have.

Repeating tasks: completing one (`task_update(completed=True)`, whoever calls it)
stores it completed and creates its next occurrence: same title, description,
priority, tags and repeat, `due_at` moved on by one period in the owner's time
zone (so "daily at 9:00" stays at 9:00 local time across daylight-saving changes).
A monthly task due on a day its next month lacks (the 31st, or the 29th/30th in
February) falls on that month's last day, and the series goes on from there (Jan 31
→ Feb 28 → Mar 28). The next occurrence carries the id of the one it follows in
`follows`, which is unique: the database lets each task have one next occurrence,
and the completion holds the task's row lock, so retries and races create it once.
"""

import re
from datetime import UTC

from dateutil.relativedelta import relativedelta
from django.db import IntegrityError, transaction

from core.errors import DomainError, NotFound
from core.text import text_problem

from .models import (
    DESCRIPTION_MAX_LENGTH,
    DUE_MAX,
    DUE_MIN,
    MAX_TAGS,
    TAG_CHARACTERS,
    TAG_MAX_LENGTH,
    TITLE_MAX_LENGTH,
    Priority,
    Repeat,
    Task,
)
from .selectors import tasks_of

TAG = re.compile(rf"[{TAG_CHARACTERS}]{{1,{TAG_MAX_LENGTH}}}")
PERIODS = {
    Repeat.DAILY: relativedelta(days=1),
    Repeat.WEEKLY: relativedelta(weeks=1),
    Repeat.MONTHLY: relativedelta(months=1),
}
# Which fields task_update may change, and their meaning of "leave it as it is".
UNSET = object()


class TaskNotFound(NotFound):
    default_detail = "No such task."


class InvalidTask(DomainError):
    """A value a task cannot hold; `field` names it."""

    default_detail = "The task is not valid."

    def __init__(self, detail=None, *, field=None):
        super().__init__(detail)
        self.field = field


def clean_title(title):
    """The stored form of a title: stripped, 1..200 characters."""
    title = title.strip() if isinstance(title, str) else title
    return _checked(title, name="title", max_length=TITLE_MAX_LENGTH, min_length=1)


def clean_description(description):
    return _checked(description, name="description", max_length=DESCRIPTION_MAX_LENGTH)


def _checked(value, **rules):
    problem = text_problem(value, **rules)
    if problem:
        raise InvalidTask(problem, field=rules["name"])
    return value


def clean_due_at(due_at):
    """An aware datetime from DUE_MIN to DUE_MAX, in UTC; or None."""
    if due_at is None:
        return None
    if not hasattr(due_at, "utcoffset") or due_at.utcoffset() is None:
        raise InvalidTask("due_at must be an instant with a time zone offset.", field="due_at")
    if not DUE_MIN <= due_at <= DUE_MAX:
        raise InvalidTask(f"due_at must be from {DUE_MIN.year} to {DUE_MAX.year}.", field="due_at")
    return due_at.astimezone(UTC)


def clean_priority(priority):
    if priority not in Priority.values:
        raise InvalidTask(
            f"priority must be one of {', '.join(Priority.values)}.", field="priority"
        )
    return priority


def clean_repeat(repeat):
    if repeat is not None and repeat not in Repeat.values:
        raise InvalidTask(
            f"repeat must be null or one of {', '.join(Repeat.values)}.", field="repeat"
        )
    return repeat


def clean_tags(tags):
    """Tags as stored: lower-case, each once (in the order first given), at most 10."""
    if not isinstance(tags, list | tuple):
        raise InvalidTask("tags must be a list of strings.", field="tags")
    cleaned = []
    for tag in tags:
        if not isinstance(tag, str) or not TAG.fullmatch(tag.lower()):
            raise InvalidTask(
                f"Each tag must be 1 to {TAG_MAX_LENGTH} letters, digits, '-' or '_' "
                f"(got {str(tag)[:40]!r}).",
                field="tags",
            )
        if tag.lower() not in cleaned:
            cleaned.append(tag.lower())
    if len(cleaned) > MAX_TAGS:
        raise InvalidTask(f"A task has at most {MAX_TAGS} tags.", field="tags")
    return cleaned


def check_repeat(*, repeat, due_at):
    if repeat is not None and due_at is None:
        raise InvalidTask("A repeating task needs a due_at.", field="repeat")


def next_due(due_at, repeat, zone=UTC):
    """`due_at` moved on by one `repeat` period, counted in `zone`; None past DUE_MAX."""
    local = due_at.astimezone(zone) + PERIODS[repeat]
    moved = local.astimezone(UTC)
    return moved if moved <= DUE_MAX else None


def task_get(*, owner, task_id):
    try:
        return tasks_of(owner).get(pk=int(task_id))
    except (Task.DoesNotExist, ValueError, TypeError, OverflowError):
        raise TaskNotFound() from None


def task_create(
    *,
    owner,
    title,
    description="",
    completed=False,
    due_at=None,
    priority=Priority.NORMAL,
    tags=(),
    repeat=None,
):
    due_at, repeat = clean_due_at(due_at), clean_repeat(repeat)
    check_repeat(repeat=repeat, due_at=due_at)
    return Task.objects.create(
        owner=owner,
        title=clean_title(title),
        description=clean_description(description),
        completed=bool(completed),
        due_at=due_at,
        priority=clean_priority(priority),
        tags=clean_tags(tags),
        repeat=repeat,
    )


def task_update(
    *,
    task,
    title=None,
    description=None,
    completed=None,
    due_at=UNSET,
    priority=None,
    tags=None,
    repeat=UNSET,
    zone=UTC,
):
    """Change the given fields of `task` (None, or UNSET for the nullable `due_at` and
    `repeat`, leaves a field as it is). Completing a repeating task creates its next
    occurrence (see the module docstring), its period counted in `zone`: a tzinfo, or
    a function returning one, called only then (the owner's zone costs a query)."""
    if title is not None:
        task.title = clean_title(title)
    if description is not None:
        task.description = clean_description(description)
    if due_at is not UNSET:
        task.due_at = clean_due_at(due_at)
    if priority is not None:
        task.priority = clean_priority(priority)
    if tags is not None:
        task.tags = clean_tags(tags)
    if repeat is not UNSET:
        task.repeat = clean_repeat(repeat)
    check_repeat(repeat=task.repeat, due_at=task.due_at)
    if completed and task.repeat:
        return _complete_repeating(task, zone)
    if completed is not None:
        task.completed = bool(completed)
    task.save()
    return task


@transaction.atomic
def _complete_repeating(task, zone):
    """Store `task` completed and create its next occurrence, once (row lock + the
    unique `follows`)."""
    was_completed = (
        Task.objects.select_for_update()
        .filter(pk=task.pk)
        .values_list("completed", flat=True)
        .first()
    )
    task.completed = True
    task.save()
    if was_completed:
        return task
    due_at = next_due(task.due_at, task.repeat, zone() if callable(zone) else zone)
    if due_at is None or Task.objects.filter(follows=task.pk).exists():
        return task
    try:
        with transaction.atomic():
            Task.objects.create(
                owner_id=task.owner_id,
                title=task.title,
                description=task.description,
                due_at=due_at,
                priority=task.priority,
                tags=task.tags,
                repeat=task.repeat,
                follows=task.pk,
            )
    except IntegrityError:  # a racing completion created it first
        pass
    return task


def task_complete(*, owner, task_id, zone=UTC):
    return task_update(task=task_get(owner=owner, task_id=task_id), completed=True, zone=zone)


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
