"""The task tools: schemas, results, and that every expected failure is a result."""

import inspect
import json
from datetime import UTC, datetime

import pytest

from tasks import tools
from tasks.models import Task
from testing.factories import TaskFactory, UserFactory


def call(owner, name, **arguments):
    return tools.call_tool(owner=owner, name=name, arguments=arguments)


def test_registry_has_the_five_tools_with_docstring_descriptions():
    assert list(tools.TOOLS) == [
        "add_task",
        "list_tasks",
        "complete_task",
        "delete_task",
        "update_task",
    ]
    for tool in tools.TOOLS.values():
        assert tool.description == inspect.cleandoc(tool.function.__doc__)
        assert tool.parameters["type"] == "object"
        assert tool.parameters["additionalProperties"] is False
        assert not {"owner", "user", "user_id"} & set(tool.parameters["properties"])
    assert tools.TOOLS["add_task"].parameters["required"] == ["title"]
    assert tools.TOOLS["update_task"].parameters["required"] == ["task_id"]


@pytest.mark.django_db
def test_add_task_creates_for_the_given_owner_only(user, other_user):
    result = call(user, "add_task", title="  Buy milk ", description="2 litres")

    task = Task.objects.get()
    assert task.owner == user
    assert result == {
        "ok": True,
        "task": {
            "id": task.id,
            "title": "Buy milk",
            "description": "2 litres",
            "completed": False,
            "due_at": None,
            "priority": "normal",
            "tags": [],
            "repeat": None,
        },
    }
    assert not Task.objects.filter(owner=other_user).exists()


@pytest.mark.django_db
def test_owner_as_an_argument_is_refused(user, other_user):
    result = tools.call_tool(
        owner=user, name="add_task", arguments={"title": "x", "owner": other_user.pk}
    )

    assert result["ok"] is False
    assert result["error"] == "invalid_arguments"
    assert "owner" in result["detail"]
    assert not Task.objects.exists()


@pytest.mark.django_db
def test_list_tasks_filters_by_status_and_search(user, other_user):
    milk = TaskFactory(owner=user, title="Buy milk")
    done = TaskFactory(owner=user, title="Call mom", completed=True)
    TaskFactory(owner=other_user, title="Buy milk too")

    assert [t["id"] for t in call(user, "list_tasks")["tasks"]] == [done.id, milk.id]
    assert [t["id"] for t in call(user, "list_tasks", status="pending")["tasks"]] == [milk.id]
    assert [t["id"] for t in call(user, "list_tasks", status="completed")["tasks"]] == [done.id]
    assert [t["id"] for t in call(user, "list_tasks", search="MILK")["tasks"]] == [milk.id]
    assert call(user, "list_tasks", status="later")["error"] == "invalid_arguments"


@pytest.mark.django_db
def test_list_tasks_is_bounded_and_says_so(user):
    TaskFactory.create_batch(tools.MAX_LISTED + 1, owner=user, title="t" * 200)

    result = call(user, "list_tasks")

    assert result["truncated"] is True
    assert 0 < len(result["tasks"]) <= tools.MAX_LISTED
    assert len(tools.encode(result)) <= tools.MAX_RESULT_CHARS


@pytest.mark.django_db
def test_complete_task_marks_done_and_reports_already_done(user):
    task = TaskFactory(owner=user, title="Buy milk")

    first = call(user, "complete_task", task_id=task.id)
    again = call(user, "complete_task", task_id=str(task.id))

    assert first["task"]["completed"] is True and first["already_completed"] is False
    assert again["already_completed"] is True
    task.refresh_from_db()
    assert task.completed


@pytest.mark.django_db
def test_another_users_task_is_not_found_and_untouched(user, other_user):
    theirs = TaskFactory(owner=other_user, title="Theirs")

    for name in ("complete_task", "delete_task"):
        result = call(user, name, task_id=theirs.id)
        assert result["ok"] is False and result["error"] == "not_found"
        assert str(theirs.id) in result["detail"]
    result = call(user, "update_task", task_id=theirs.id, title="Mine now")
    assert result["error"] == "not_found"
    theirs.refresh_from_db()
    assert (theirs.title, theirs.completed) == ("Theirs", False)


@pytest.mark.django_db
def test_delete_task_returns_what_was_deleted(user):
    task = TaskFactory(owner=user, title="Buy milk")

    assert call(user, "delete_task", task_id=task.id) == {
        "ok": True,
        "deleted": {"id": task.id, "title": "Buy milk"},
    }
    assert not Task.objects.exists()
    assert call(user, "delete_task", task_id=task.id)["error"] == "not_found"


@pytest.mark.django_db
def test_update_task_changes_only_given_fields(user):
    task = TaskFactory(owner=user, title="Buy milk", description="2 litres")

    result = call(user, "update_task", task_id=task.id, title="Buy oat milk")

    assert result["task"] == {
        "id": task.id,
        "title": "Buy oat milk",
        "description": "2 litres",
        "completed": False,
        "due_at": None,
        "priority": "normal",
        "tags": [],
        "repeat": None,
    }
    assert call(user, "update_task", task_id=task.id, completed=False)["ok"] is True
    assert call(user, "update_task", task_id=task.id)["error"] == "invalid_arguments"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name, arguments, fragment",
    [
        ("add_task", {}, "title is required"),
        ("add_task", {"title": "   "}, "blank"),
        ("add_task", {"title": "x" * 201}, "at most 200"),
        ("add_task", {"title": 5}, "must be a string"),
        ("add_task", {"title": "a\x00b"}, "NUL"),
        ("complete_task", {"task_id": "three"}, "whole number"),
        ("complete_task", {"task_id": True}, "whole number"),
        ("complete_task", {"task_id": 0}, "from 1"),
        ("complete_task", {"task_id": 2**64}, "from 1"),
        ("update_task", {"task_id": 1, "completed": "yes"}, "true or false"),
        ("add_task", "not json", "not valid JSON"),
        ("add_task", "[1, 2]", "JSON object"),
    ],
)
def test_bad_arguments_are_results_not_exceptions(user, name, arguments, fragment):
    result = tools.call_tool(owner=user, name=name, arguments=arguments)

    assert result["ok"] is False
    assert result["error"] == "invalid_arguments"
    assert fragment in result["detail"]
    assert not Task.objects.exists()


def test_unknown_tool_is_a_result():
    result = tools.call_tool(owner=None, name="drop_database", arguments={})

    assert result["error"] == "unknown_tool"
    assert "add_task" in result["detail"]


@pytest.mark.django_db
def test_arguments_may_be_json_text():
    owner = UserFactory()

    result = tools.call_tool(
        owner=owner, name="add_task", arguments=json.dumps({"title": "Buy milk"})
    )

    assert result["ok"] is True
    assert Task.objects.get().title == "Buy milk"


@pytest.mark.django_db
def test_every_result_matches_the_result_schema_the_api_publishes(user, other_user):
    """The chat turn's answer types each tool result as RESULT_SCHEMA (`ToolResult`)."""
    import jsonschema

    task = TaskFactory(owner=user, title="Buy milk")
    theirs = TaskFactory(owner=other_user)
    results = [
        call(user, "add_task", title="Call mom"),
        call(user, "list_tasks", status="pending", search="milk"),
        call(user, "complete_task", task_id=task.pk),
        call(user, "complete_task", task_id=task.pk),
        call(user, "update_task", task_id=task.pk, title="Buy oat milk"),
        call(user, "update_task", task_id=task.pk),
        call(user, "delete_task", task_id=task.pk),
        call(user, "delete_task", task_id=theirs.pk),
        call(user, "add_task", title=""),
        call(user, "no_such_tool"),
    ]
    for result in results:
        jsonschema.validate(result, tools.RESULT_SCHEMA)
    assert {result["ok"] for result in results} == {True, False}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"ok": True, "task": {"id": "1"}}, tools.RESULT_SCHEMA)


@pytest.mark.django_db
def test_task_search_means_the_same_through_the_api_and_the_tool(user, api_client):
    """Every word must match, in any order, in the title or the description."""
    both = TaskFactory(owner=user, title="Buy milk")
    split = TaskFactory(owner=user, title="Milk", description="buy the oat one")
    TaskFactory(owner=user, title="Buy bread")
    TaskFactory(owner=user, title="buy milk-free cheese? no: bread")
    expected = {both.id, split.id, Task.objects.get(title__startswith="buy milk-free").id}

    through_api = api_client.get("/api/v1/tasks/?search=milk%20buy").json()["results"]
    through_tool = call(user, "list_tasks", search="milk buy")["tasks"]

    assert {t["id"] for t in through_api} == expected
    assert {t["id"] for t in through_tool} == expected


@pytest.mark.django_db
@pytest.mark.parametrize(
    "arguments, named",
    [
        ({"due_at": "next friday"}, "due_at"),
        ({"priority": "urgent"}, "priority"),
        ({"tags": ["two words"]}, "tags"),
        ({"tags": [f"t{i}" for i in range(11)]}, "tags"),
        ({"repeat": "daily"}, "due_at"),
        ({"repeat": "yearly", "due_at": "2026-03-06T17:00:00Z"}, "repeat"),
    ],
)
def test_add_task_bad_dates_priorities_tags_or_repeats_are_results(user, arguments, named):
    result = call(user, "add_task", title="Pay rent", **arguments)

    assert result["ok"] is False
    assert result["error"] == "invalid_arguments"
    assert named in result["detail"]
    assert not Task.objects.exists()


@pytest.mark.django_db
def test_list_tasks_filters_and_orders_by_due_date(user):
    late = TaskFactory(owner=user, due_at=datetime(2026, 3, 9, tzinfo=UTC), tags=["home"])
    soon = TaskFactory(owner=user, due_at=datetime(2026, 3, 3, tzinfo=UTC), priority="high")
    TaskFactory(owner=user)

    by_due = call(user, "list_tasks", order="due")["tasks"]
    spanned = call(user, "list_tasks", due_after="2026-03-01T00:00:00Z", due_before="2026-03-05")
    tagged = call(user, "list_tasks", tags=["HOME"])["tasks"]

    assert [t["id"] for t in by_due][:2] == [soon.id, late.id]
    assert by_due[0] == {
        "id": soon.id,
        "title": soon.title,
        "completed": False,
        "due_at": "2026-03-03T00:00:00Z",
        "priority": "high",
    }
    assert [t["id"] for t in spanned["tasks"]] == [soon.id]
    assert [t["id"] for t in tagged] == [late.id]


@pytest.mark.django_db
def test_update_task_sets_due_priority_tags_and_repeat(user):
    task = TaskFactory(owner=user)

    result = call(
        user,
        "update_task",
        task_id=task.id,
        due_at="2026-03-06T17:00:00+09:00",
        priority="low",
        tags=["x"],
        repeat="weekly",
    )

    assert result["ok"] is True
    task.refresh_from_db()
    assert task.due_at.isoformat() == "2026-03-06T08:00:00+00:00"
    assert (task.priority, task.tags, task.repeat) == ("low", ["x"], "weekly")
