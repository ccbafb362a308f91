"""Reads of tasks, each written once: the API, the agent tools, the MCP server and the
admin call these.

Every selector takes the owner: a user, a user's pk, or a `core.compiled.Param`
standing for one in a compiled read. Which tasks a caller may see is decided here
and nowhere else.
"""

from operator import attrgetter

from core.compiled import Param

from .models import Task

# The API's task: the serializer's fields, a page's columns and `task_data`'s keys.
TASK_FIELDS = (
    "id",
    "title",
    "description",
    "completed",
    "created_at",
    "updated_at",
    "due_at",
    "priority",
    "tags",
    "repeat",
)
task_values = attrgetter(*TASK_FIELDS)
# Columns a page reads besides TASK_FIELDS: the sort keys its cursor is made of.
SORT_KEYS = ("due_rank", "priority_rank")

# The owner of a compiled read, given as the value `owner_id` when it runs.
OWNER = Param("owner_id", Task._meta.get_field("owner"))


def tasks_of(owner):
    """The owner's tasks, newest first."""
    return Task.objects.owned_by(owner)


def task_list(
    *,
    owner,
    completed=None,
    search=None,
    priority=None,
    tags=(),
    due_after=None,
    due_before=None,
):
    """The owner's tasks, newest first, optionally by status, by `search` text (every
    word of it in the title or the description, case-insensitively), by priority,
    by tags (all of them) and by due date (at or after `due_after`, before
    `due_before`; a task with no due date never matches those)."""
    tasks = tasks_of(owner)
    if completed is not None:
        tasks = tasks.with_status(completed)
    if search:
        tasks = tasks.search(search)
    if priority:
        tasks = tasks.with_priority(priority)
    if tags:
        tasks = tasks.with_tags(tags)
    if due_after is not None or due_before is not None:
        tasks = tasks.due_between(after=due_after, before=due_before)
    return tasks


def task_page_rows(owner=OWNER):
    """A list page's rows (named tuples of TASK_FIELDS): building model instances
    costs more than the query."""
    return tasks_of(owner).values_list(*TASK_FIELDS, *SORT_KEYS, named=True)
