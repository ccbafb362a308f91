"""The task tools: one registry, shared by the chat agents and the MCP server.

A tool is a small function `fn(*, owner, **arguments) -> dict`. Its docstring is
the description the model sees and its `parameters` are a JSON schema of the
arguments. `owner` always comes from the server (the API caller, the MCP token's
user), never from the model: no schema has an owner or user argument, and an
argument the schema does not name is refused.

`call_tool` is the one way to run a tool. It validates the arguments and turns
every failure a caller could cause (an unknown tool, bad arguments, a task that
does not exist or is another user's) into a result
`{"ok": False, "error": <code>, "detail": <what to do>}`; it raises only for what
no argument can fix, such as an unreachable database. Results are small JSON
objects: a listed task has no description, and a list holds at most
`MAX_LISTED` tasks.
"""

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from django.contrib.auth.base_user import AbstractBaseUser
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from core.errors import DomainError
from core.timezones import user_timezone

from . import selectors, services
from .models import (
    DESCRIPTION_MAX_LENGTH,
    MAX_TAGS,
    TAG_MAX_LENGTH,
    TITLE_MAX_LENGTH,
    Priority,
    Repeat,
)

MAX_LISTED = 30
# The largest result, JSON-encoded; a list is cut to fit (and says so).
MAX_RESULT_CHARS = 8000
MAX_ID = 2**63 - 1
MAX_DETAIL_CHARS = 300

STATUSES = {"all": None, "pending": False, "completed": True}
# list_tasks' `order`: the API's orderings by name.
ORDERS = {
    "newest": ("-created_at", "-id"),
    "due": ("due_rank", "id"),
    "priority": ("-priority_rank", "-created_at", "-id"),
}


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict
    function: Callable[..., dict]
    validator: Draft202012Validator


TOOLS: dict[str, Tool] = {}


def tool(**properties):
    """Register the decorated function as a tool with these JSON-schema properties.

    A property is required unless its schema has a "default" or "optional": True.
    """

    def register(function):
        required = [
            name
            for name, schema in properties.items()
            if "default" not in schema and not schema.get("optional")
        ]
        schema = {
            "type": "object",
            "properties": {
                name: {k: v for k, v in prop.items() if k != "optional"}
                for name, prop in properties.items()
            },
            "required": required,
            "additionalProperties": False,
        }
        Draft202012Validator.check_schema(schema)
        TOOLS[function.__name__] = Tool(
            name=function.__name__,
            description=inspect.cleandoc(function.__doc__),
            parameters=schema,
            function=function,
            validator=Draft202012Validator(schema),
        )
        return function

    return register


TASK_ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID, "description": "The task's id."}
# Text the database can store: PostgreSQL refuses NUL characters.
NO_NUL = "^[^\\x00]*$"
TITLE = {"type": "string", "minLength": 1, "maxLength": TITLE_MAX_LENGTH, "pattern": NO_NUL}
DESCRIPTION = {"type": "string", "maxLength": DESCRIPTION_MAX_LENGTH, "pattern": NO_NUL}
INSTANT = {"type": "string", "format": "date-time", "maxLength": 40, "pattern": NO_NUL}
DUE_AT = {
    **INSTANT,
    "description": "When the task is due: an ISO 8601 date-time, e.g. "
    "2026-03-06T17:00:00-05:00; without an offset it is read in the user's time zone.",
}
PRIORITY = {
    "type": "string",
    "enum": Priority.values,
    "description": "low, normal (the default) or high (urgent).",
}
TAG_PATTERN = f"^[A-Za-z0-9_-]{{1,{TAG_MAX_LENGTH}}}$"
TAGS = {
    "type": "array",
    "items": {"type": "string", "pattern": TAG_PATTERN},
    "maxItems": MAX_TAGS,
    "description": f"Up to {MAX_TAGS} tags (letters, digits, '-', '_'; stored "
    'lower-case), without the "#": e.g. ["home", "bills"].',
}
REPEAT = {
    "type": "string",
    "enum": Repeat.values,
    "description": "daily, weekly or monthly: completing the task then creates the next "
    "one, due one period later. Needs due_at.",
}


LISTED_TASK_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "title": {"type": "string"},
        "completed": {"type": "boolean"},
    },
    "required": ["id", "title", "completed"],
}
TASK_RESULT_SCHEMA = {
    "type": "object",
    "properties": {
        **LISTED_TASK_SCHEMA["properties"],
        "description": {"type": "string"},
    },
    "required": ["id", "title", "description", "completed"],
}
# The JSON schema of every tool's result (the API's chat turn answers them; a test
# holds each tool to it). Tools may add properties; none removes one.
RESULT_SCHEMA = {
    "type": "object",
    "description": (
        "What the tool answered. `ok` says whether it did what was asked. If not, "
        "`error` is a code (`not_found`, `invalid_arguments`, `unknown_tool`) and "
        "`detail` says what to do. If so, it carries what it changed or found: "
        "`task` (add, complete, update), `already_completed` (complete), `deleted` "
        "(delete), `tasks` with `status` and `truncated` (list)."
    ),
    "properties": {
        "ok": {"type": "boolean"},
        "error": {"type": "string"},
        "detail": {"type": "string"},
        "task": TASK_RESULT_SCHEMA,
        "already_completed": {"type": "boolean"},
        "deleted": {
            "type": "object",
            "properties": {"id": {"type": "integer"}, "title": {"type": "string"}},
            "required": ["id", "title"],
        },
        "status": {"type": "string", "enum": list(STATUSES)},
        "tasks": {"type": "array", "items": LISTED_TASK_SCHEMA},
        "truncated": {"type": "boolean"},
    },
    "required": ["ok"],
}


def task_result(task):
    return {
        "id": task.id,
        "title": task.title,
        "description": task.description,
        "completed": task.completed,
        "due_at": instant_text(task.due_at),
        "priority": task.priority,
        "tags": list(task.tags),
        "repeat": task.repeat,
    }


def listed_task(task):
    """A task in a list result: no description, and only what is set."""
    listed = {"id": task.id, "title": task.title, "completed": task.completed}
    if task.due_at is not None:
        listed["due_at"] = instant_text(task.due_at)
    if task.priority != Priority.NORMAL:
        listed["priority"] = task.priority
    if task.tags:
        listed["tags"] = list(task.tags)
    if task.repeat:
        listed["repeat"] = task.repeat
    return listed


def instant_text(value):
    """An instant as the API writes it (UTC, `Z`), or None."""
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_instant(value, *, name, owner):
    """An ISO 8601 date-time argument as an aware datetime; one without an offset is
    read in the owner's time zone (what a model usually means)."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidArguments(
            f"{name} must be an ISO 8601 date-time such as 2026-03-06T17:00:00-05:00."
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=user_timezone(owner))
    return parsed


def error_result(code, detail):
    return {"ok": False, "error": code, "detail": detail[:MAX_DETAIL_CHARS]}


def not_found(task_id):
    return error_result(
        "not_found",
        f"There is no task {task_id} in the user's list; call list_tasks to see their ids.",
    )


@tool(
    title={**TITLE, "description": 'What to do, e.g. "Buy milk".'},
    description={**DESCRIPTION, "default": "", "description": "Optional details."},
    due_at={**DUE_AT, "optional": True},
    priority={**PRIORITY, "default": Priority.NORMAL},
    tags={**TAGS, "default": []},
    repeat={**REPEAT, "optional": True},
)
def add_task(*, owner, title, description="", due_at=None, priority="normal", tags=(), repeat=None):
    """Add a task to the user's todo list. Returns the new task with its id.

    Optional: due_at (ISO 8601; without an offset, the user's time zone), priority
    (low, normal, high), tags (e.g. ["home"]) and repeat (daily, weekly, monthly;
    needs due_at).
    """
    task = services.task_create(
        owner=owner,
        title=title,
        description=description,
        due_at=due_at and parse_instant(due_at, name="due_at", owner=owner),
        priority=priority,
        tags=tags,
        repeat=repeat,
    )
    return {"ok": True, "task": task_result(task)}


@tool(
    status={
        "type": "string",
        "enum": list(STATUSES),
        "default": "all",
        "description": "Which tasks: all of them, pending (not done) or completed.",
    },
    search={
        "type": "string",
        "maxLength": TITLE_MAX_LENGTH,
        "pattern": NO_NUL,
        "optional": True,
        "description": "Only tasks with every word of this text in their title or "
        "description, ignoring case.",
    },
    priority={**PRIORITY, "optional": True, "description": "Only tasks of this priority."},
    tags={**TAGS, "optional": True, "description": "Only tasks with all of these tags."},
    due_after={
        **INSTANT,
        "optional": True,
        "description": "Only tasks due at or after this ISO 8601 date-time.",
    },
    due_before={
        **INSTANT,
        "optional": True,
        "description": "Only tasks due before this ISO 8601 date-time (with status "
        "pending and the current time: the overdue ones).",
    },
    order={
        "type": "string",
        "enum": list(ORDERS),
        "default": "newest",
        "description": "newest first, due (soonest first, undated last) or priority (high first).",
    },
)
def list_tasks(
    *,
    owner,
    status="all",
    search=None,
    priority=None,
    tags=None,
    due_after=None,
    due_before=None,
    order="newest",
):
    """List the user's tasks (at most 30): all, pending or completed ones, optionally
    only those matching some text, a priority, tags (all of them) or a span of due
    dates (due_after, due_before: ISO 8601), newest first or ordered by due date or
    priority. Tasks with no due date never match a due filter."""
    tasks = selectors.task_list(
        owner=owner,
        completed=STATUSES[status],
        search=search or None,
        priority=priority,
        tags=services.clean_tags(tags or []),
        due_after=due_after and parse_instant(due_after, name="due_after", owner=owner),
        due_before=due_before and parse_instant(due_before, name="due_before", owner=owner),
    )
    rows = list(tasks.order_by(*ORDERS[order])[: MAX_LISTED + 1])
    listed = [listed_task(t) for t in rows]
    result = {
        "ok": True,
        "status": status,
        "tasks": listed[:MAX_LISTED],
        "truncated": len(listed) > MAX_LISTED,
    }
    while len(encode(result)) > MAX_RESULT_CHARS and result["tasks"]:
        result["tasks"] = result["tasks"][:-1]
        result["truncated"] = True
    return result


@tool(task_id=TASK_ID)
def complete_task(*, owner, task_id):
    """Mark one of the user's tasks as done."""
    task = services.task_get(owner=owner, task_id=task_id)
    already = task.completed
    if not already:
        task = services.task_update(task=task, completed=True, zone=partial(user_timezone, owner))
    return {"ok": True, "task": task_result(task), "already_completed": already}


@tool(task_id=TASK_ID)
def delete_task(*, owner, task_id):
    """Delete one of the user's tasks for good."""
    task = services.task_delete(owner=owner, task_id=task_id)
    return {"ok": True, "deleted": {"id": task.id, "title": task.title}}


@tool(
    task_id=TASK_ID,
    title={**TITLE, "optional": True, "description": "The new title."},
    description={**DESCRIPTION, "optional": True, "description": "The new details."},
    completed={
        "type": "boolean",
        "optional": True,
        "description": "true marks the task done, false marks it not done.",
    },
    due_at={**DUE_AT, "optional": True},
    priority={**PRIORITY, "optional": True},
    tags={**TAGS, "optional": True, "description": "The task's new tags (all of them)."},
    repeat={**REPEAT, "optional": True},
)
def update_task(
    *,
    owner,
    task_id,
    title=None,
    description=None,
    completed=None,
    due_at=None,
    priority=None,
    tags=None,
    repeat=None,
):
    """Change one of the user's tasks: its title, description, done state, due_at
    (ISO 8601), priority (low, normal, high), tags or repeat (daily, weekly,
    monthly). Completing a repeating task creates its next occurrence."""
    changes = {
        "title": title,
        "description": description,
        "completed": completed,
        "priority": priority,
        "tags": tags,
    }
    if due_at is not None:
        changes["due_at"] = parse_instant(due_at, name="due_at", owner=owner)
    if repeat is not None:
        changes["repeat"] = repeat
    if all(value is None for value in changes.values()):
        return error_result(
            "invalid_arguments",
            "Give at least one of title, description, completed, due_at, priority, tags or repeat.",
        )
    task = services.task_get(owner=owner, task_id=task_id)
    task = services.task_update(task=task, zone=partial(user_timezone, owner), **changes)
    return {"ok": True, "task": task_result(task)}


def encode(result: dict) -> str:
    """The compact JSON text of a result (what a model and a transcript see)."""
    return json.dumps(result, ensure_ascii=False, separators=(",", ":"))


def call_tool(*, owner: AbstractBaseUser, name: str, arguments: dict | str | None) -> dict:
    """Run the tool `name` as `owner` with `arguments` (a dict, or its JSON text).

    Never raises for anything the arguments or the data can cause; see the module
    docstring. Call inside a transaction to make the tool's writes part of it.
    """
    found = TOOLS.get(name)
    if found is None:
        return error_result(
            "unknown_tool",
            f"There is no tool {str(name)[:64]!r}; the tools are {', '.join(TOOLS)}.",
        )
    try:
        arguments = validate_arguments(found, arguments)
    except InvalidArguments as exc:
        return error_result("invalid_arguments", str(exc))
    try:
        return found.function(owner=owner, **arguments)
    except InvalidArguments as exc:
        return error_result("invalid_arguments", str(exc))
    except services.TaskNotFound:
        return not_found(arguments.get("task_id"))
    except DomainError as exc:
        return error_result("invalid_arguments", exc.detail)


class InvalidArguments(Exception):
    pass


def validate_arguments(tool: Tool, arguments) -> dict:
    """`arguments` checked against the tool's JSON schema (jsonschema), with defaults
    filled in and the first problem said in words a model can act on.

    A null argument counts as absent, and integers may also come as digit strings
    or integral floats, as models often send them.
    """
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            raise InvalidArguments("The arguments are not valid JSON.") from None
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise InvalidArguments("The arguments must be a JSON object.")
    properties = tool.parameters["properties"]
    arguments = {name: value for name, value in arguments.items() if value is not None}
    for name, value in arguments.items():
        if properties.get(name, {}).get("type") == "integer":
            integer = as_integer(value)
            arguments[name] = value if integer is None else integer
    error = best_match(tool.validator.iter_errors(arguments))
    if error is not None:
        raise InvalidArguments(problem_of(error, tool.parameters))
    defaults = {name: prop["default"] for name, prop in properties.items() if "default" in prop}
    return {**defaults, **arguments}


def problem_of(error, schema) -> str:
    """A jsonschema error as one sentence naming the argument and what it must be."""
    properties = schema["properties"]
    if error.validator == "required":
        missing = next(name for name in error.validator_value if name not in error.instance)
        return f"{missing} is required."
    if error.validator == "additionalProperties":
        unexpected = sorted(set(error.instance) - set(properties))
        return (
            f"Unexpected argument(s): {', '.join(unexpected)}. "
            f"Allowed: {', '.join(properties) or 'none'}."
        )
    name = error.absolute_path[0] if error.absolute_path else "the arguments"
    prop = properties.get(name, {})
    if error.validator == "type":
        kind = {"integer": "a whole number", "string": "a string", "boolean": "true or false"}
        return f"{name} must be {kind.get(prop.get('type'), prop.get('type'))}."
    if error.validator in ("minimum", "maximum"):
        return f"{name} must be from {prop.get('minimum')} to {prop.get('maximum', MAX_ID)}."
    if error.validator == "minLength":
        return f"{name} must not be empty."
    if error.validator == "maxLength":
        return f"{name} must be at most {prop['maxLength']} characters."
    if error.validator == "pattern" and prop.get("type") == "array":
        return f"Each of {name} must be 1 to {TAG_MAX_LENGTH} letters, digits, '-' or '_'."
    if error.validator == "pattern":
        return f"{name} must not contain NUL characters."
    if error.validator == "maxItems":
        return f"{name} must have at most {prop['maxItems']} items."
    if error.validator == "enum":
        return f"{name} must be one of {', '.join(map(str, prop['enum']))}."
    return f"{name}: {error.message}"


def as_integer(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    digits = value.strip().lstrip("#") if isinstance(value, str) else ""
    if digits.isascii() and digits.isdigit():
        return int(digits)
    return None
