"""Completing a repeating task creates its next occurrence, once: through the service,
PUT, PATCH, the complete_task and update_task tools, retried, and raced."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from tasks import services, tools
from tasks.models import Task
from testing.concurrency import run_at_once
from testing.factories import TaskFactory

pytestmark = pytest.mark.django_db

TASKS = "/api/v1/tasks/"
NEW_YORK = ZoneInfo("America/New_York")


def utc(*args):
    return datetime(*args, tzinfo=UTC)


MARCH_1 = utc(2026, 3, 1, 14)


def repeating(owner, repeat="daily", due_at=MARCH_1, **fields):
    return TaskFactory(
        owner=owner,
        title="Water plants",
        description="the ferns",
        due_at=due_at,
        repeat=repeat,
        priority="high",
        tags=["home"],
        **fields,
    )


def occurrences(task):
    return list(Task.objects.filter(follows=task.pk))


@pytest.mark.parametrize(
    "repeat, due, expected",
    [
        ("daily", utc(2026, 3, 1, 14), utc(2026, 3, 2, 14)),
        (
            "weekly",
            utc(2026, 3, 1, 14),
            utc(2026, 3, 8, 14),
        ),
        (
            "monthly",
            utc(2026, 1, 15, 9),
            utc(2026, 2, 15, 9),
        ),
        # The 31st in a 28-day month: the month's last day.
        (
            "monthly",
            utc(2026, 1, 31, 9),
            utc(2026, 2, 28, 9),
        ),
        (
            "monthly",
            utc(2028, 1, 31, 9),
            utc(2028, 2, 29, 9),
        ),
        (
            "monthly",
            utc(2026, 3, 31, 9),
            utc(2026, 4, 30, 9),
        ),
    ],
)
def test_completing_creates_the_next_occurrence_one_period_later(user, repeat, due, expected):
    task = repeating(user, repeat=repeat, due_at=due)

    services.task_update(task=task, completed=True)

    [following] = occurrences(task)
    assert following.due_at == expected
    assert not following.completed
    assert (following.title, following.description, following.priority, following.tags) == (
        "Water plants",
        "the ferns",
        "high",
        ["home"],
    )
    assert following.repeat == repeat
    assert following.owner == user
    task.refresh_from_db()
    assert task.completed


def test_a_daily_task_keeps_its_local_time_across_daylight_saving(user):
    # 9:00 in New York on the day before clocks go forward (2026-03-08) is 14:00 UTC;
    # the next 9:00 there is 13:00 UTC.
    task = repeating(user, due_at=utc(2026, 3, 7, 14))

    services.task_update(task=task, completed=True, zone=NEW_YORK)

    [following] = occurrences(task)
    assert following.due_at == utc(2026, 3, 8, 13)


def test_completing_twice_creates_one_next_occurrence(user):
    task = repeating(user)

    services.task_update(task=task, completed=True)
    services.task_update(task=Task.objects.get(pk=task.pk), completed=True)
    services.task_update(task=Task.objects.get(pk=task.pk), completed=False)
    services.task_update(task=Task.objects.get(pk=task.pk), completed=True)

    assert len(occurrences(task)) == 1
    assert Task.objects.count() == 2


def test_a_stale_copy_completing_again_creates_nothing(user):
    task = repeating(user)
    stale = Task.objects.get(pk=task.pk)

    services.task_update(task=task, completed=True)
    services.task_update(task=stale, completed=True)

    assert Task.objects.count() == 2


def test_the_next_occurrence_repeats_in_turn(user):
    task = repeating(user, repeat="weekly")

    services.task_update(task=task, completed=True)
    [second] = occurrences(task)
    services.task_update(task=second, completed=True)

    [third] = occurrences(second)
    assert third.due_at == utc(2026, 3, 15, 14)


@pytest.mark.parametrize("method", ["put", "patch"])
def test_completing_through_the_api_twice_creates_one_occurrence(api_client, user, method):
    task = repeating(user)
    body = {"completed": True}
    if method == "put":
        body["title"] = "Water plants"

    first = getattr(api_client, method)(f"{TASKS}{task.pk}/", body)
    retry = getattr(api_client, method)(f"{TASKS}{task.pk}/", body)

    assert first.status_code == retry.status_code == 200
    assert first.json()["completed"] is True
    [following] = occurrences(task)
    listed = api_client.get(f"{TASKS}?completed=false").json()["results"]
    assert [t["id"] for t in listed] == [following.pk]
    assert listed[0]["due_at"] == "2026-03-02T14:00:00Z"


def test_completing_a_task_that_does_not_repeat_creates_nothing(api_client, user):
    task = TaskFactory(owner=user, due_at=datetime(2026, 3, 1, tzinfo=UTC))

    api_client.patch(f"{TASKS}{task.pk}/", {"completed": True})

    assert Task.objects.count() == 1


@pytest.mark.parametrize(
    "name, arguments",
    [("complete_task", {}), ("update_task", {"completed": True})],
)
def test_tools_retried_create_one_occurrence(user, name, arguments):
    task = repeating(user)

    first = tools.call_tool(owner=user, name=name, arguments={"task_id": task.pk, **arguments})
    again = tools.call_tool(owner=user, name=name, arguments={"task_id": task.pk, **arguments})

    assert first["ok"] and again["ok"]
    assert len(occurrences(task)) == 1


def test_the_database_refuses_a_second_next_occurrence(user):
    task = repeating(user)
    services.task_update(task=task, completed=True)

    with pytest.raises(IntegrityError), transaction.atomic():
        TaskFactory(owner=user, follows=task.pk)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_completions_racing_from_threads_create_one_occurrence(user):
    task = repeating(user)

    def complete(index):
        if index % 2:
            return tools.call_tool(owner=user, name="complete_task", arguments={"task_id": task.pk})
        return services.task_complete(owner=user, task_id=task.pk)

    results, errors = run_at_once(6, complete)

    assert errors == []
    assert len(occurrences(task)) == 1
    assert Task.objects.filter(owner=user).count() == 2
    assert connection.vendor == "postgresql"


def test_only_a_completion_that_repeats_reads_the_owners_time_zone(api_client, user):
    plain = TaskFactory(owner=user)
    task = repeating(user)

    with CaptureQueriesContext(connection) as edit:
        api_client.patch(f"{TASKS}{plain.pk}/", {"title": "renamed", "completed": True})
    with CaptureQueriesContext(connection) as completion:
        api_client.patch(f"{TASKS}{task.pk}/", {"completed": True})

    assert not any("accounts_profile" in q["sql"] for q in edit.captured_queries)
    assert any("accounts_profile" in q["sql"] for q in completion.captured_queries)
