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
TASK_FIELDS = ("id", "title", "description", "completed", "created_at", "updated_at")
task_values = attrgetter(*TASK_FIELDS)

# The owner of a compiled read, given as the value `owner_id` when it runs.
OWNER = Param("owner_id", Task._meta.get_field("owner"))


def tasks_of(owner):
    """The owner's tasks, newest first."""
    return Task.objects.owned_by(owner)


def task_list(*, owner, completed=None, search=None):
    """The owner's tasks, newest first, optionally by status and by `search` text
    (every word of it in the title or the description, case-insensitively)."""
    tasks = tasks_of(owner)
    if completed is not None:
        tasks = tasks.with_status(completed)
    if search:
        tasks = tasks.search(search)
    return tasks


def task_page_rows(owner=OWNER):
    """A list page's rows (named tuples of TASK_FIELDS): building model instances
    costs more than the query."""
    return tasks_of(owner).values_list(*TASK_FIELDS, named=True)
