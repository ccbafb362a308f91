"""Reads of tasks, each written once: the API, the agent tools, the MCP server and the
admin call these.

Every selector takes the owner: a user, a user's pk, or a `core.compiled.Param`
standing for one in a compiled read. Which tasks a caller may see is decided here
and nowhere else.
"""

from operator import attrgetter

from core.compiled import Param
from core.pagination import sort_field

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


# The values of a filtered page's compiled read (`task_page_rows`), named as the
# API's filters are: `completed`, `priority`, `tags` (a sorted list without
# repeats), `due_after` and `due_before` (UTC instants within the due-date span).
PAGE_FILTERS = {
    "completed": Param("completed", Task._meta.get_field("completed")),
    "priority": Param("priority", Task._meta.get_field("priority")),
    "tags": Param("tags", Task._meta.get_field("tags")),
    "due_after": Param("due_after", sort_field(Task, "due_rank")),
    "due_before": Param("due_before", sort_field(Task, "due_rank")),
}


def task_page_rows(owner=OWNER, **filters):
    """A list page's rows (named tuples of TASK_FIELDS): building model instances
    costs more than the query.

    `filters` names the PAGE_FILTERS present (each `name=True`): the query then
    filters by each one's Param, so one compiled read serves every request with the
    same filters present, whatever their values (`TaskViewSet.list`).
    """
    params = {name: PAGE_FILTERS[name] for name, present in filters.items() if present}
    tasks = task_list(
        owner=owner,
        completed=params.get("completed"),
        priority=params.get("priority"),
        tags=params.get("tags", ()),
        due_after=params.get("due_after"),
        due_before=params.get("due_before"),
    )
    return tasks.values_list(*TASK_FIELDS, *SORT_KEYS, named=True)
