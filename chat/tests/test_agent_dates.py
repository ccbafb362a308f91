"""The rules agent reads dates, times, priorities, tags, repetition and list questions
in the user's time zone, through the chat turn (POST /api/v1/chat/), with the clock
pinned by `settings.CHAT_NOW`.

The clock: Monday 2 March 2026, 15:00 UTC: 10:00 on Monday in New York (UTC-5),
00:00 on Tuesday 3 March in Tokyo (UTC+9).
"""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from accounts.models import Profile
from chat.agents.base import TurnContext
from chat.agents.openai_agent import system_prompt
from tasks.models import Task
from testing.factories import TaskFactory

pytestmark = pytest.mark.django_db

CHAT = "/api/v1/chat/"
NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
ZONES = ["America/New_York", "Asia/Tokyo"]


def local(zone, *args):
    return datetime(*args, tzinfo=ZoneInfo(zone)).astimezone(UTC)


# (message, zone) -> the due_at the task gets, in that zone's local time.
DUE = {
    ("remind me to call mom tomorrow", "America/New_York"): (2026, 3, 3, 9, 0),
    ("remind me to call mom tomorrow", "Asia/Tokyo"): (2026, 3, 4, 9, 0),
    ("add call mom tomorrow at 5pm", "America/New_York"): (2026, 3, 3, 17, 0),
    ("add call mom tomorrow at 5pm", "Asia/Tokyo"): (2026, 3, 4, 17, 0),
    ("add call mom next friday", "America/New_York"): (2026, 3, 6, 9, 0),
    ("add call mom next friday", "Asia/Tokyo"): (2026, 3, 6, 9, 0),
    ("add call mom in 3 days", "America/New_York"): (2026, 3, 5, 9, 0),
    ("add call mom in 3 days", "Asia/Tokyo"): (2026, 3, 6, 9, 0),
    ("add call mom on the 1st", "America/New_York"): (2026, 4, 1, 9, 0),
    ("add call mom on the 1st", "Asia/Tokyo"): (2026, 4, 1, 9, 0),
}


@pytest.fixture(autouse=True)
def pinned_clock(settings):
    settings.CHAT_NOW = NOW


def in_zone(user, zone):
    Profile.objects.update_or_create(user=user, defaults={"timezone": zone})
    return user


def turn(client, message):
    response = client.post(CHAT, {"message": message}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.parametrize("message, zone", list(DUE))
def test_due_dates_are_read_in_the_users_zone(api_client, user, message, zone):
    in_zone(user, zone)

    body = turn(api_client, message)

    task = Task.objects.get(owner=user)
    assert task.title == "call mom"
    assert task.due_at == local(zone, *DUE[(message, zone)])
    [call] = body["tool_calls"]
    assert call["name"] == "add_task"
    assert call["arguments"]["due_at"] == task.due_at.isoformat().replace("+00:00", "Z")
    assert "due " in body["assistant_message"]["content"]


@pytest.mark.parametrize("zone", ZONES)
def test_a_day_said_without_a_time_that_has_passed_is_due_at_its_end(api_client, user, zone):
    # 10:00 in New York is past 09:00; in Tokyo it is midnight, before 09:00.
    in_zone(user, zone)

    turn(api_client, "add water plants today")

    expected = {"America/New_York": (2026, 3, 2, 23, 59), "Asia/Tokyo": (2026, 3, 3, 9, 0)}
    assert Task.objects.get().due_at == local(zone, *expected[zone])


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize(
    "message, priority",
    [
        ("add pay rent, urgent", "high"),
        ("add pay rent high priority", "high"),
        ("add pay rent (low priority)", "low"),
    ],
)
def test_priorities(api_client, user, zone, message, priority):
    in_zone(user, zone)

    body = turn(api_client, message)

    task = Task.objects.get()
    assert (task.title, task.priority) == ("pay rent", priority)
    assert f"{priority} priority" in body["assistant_message"]["content"]


@pytest.mark.parametrize("zone", ZONES)
def test_tags_and_repetition(api_client, user, zone):
    in_zone(user, zone)

    body = turn(api_client, "add water the plants #home #Garden every week at 8am")

    task = Task.objects.get()
    assert task.title == "water the plants"
    assert task.tags == ["home", "garden"]
    assert task.repeat == "weekly"
    # 08:00 has passed in New York (10:00) but not in Tokyo (00:00).
    expected = {"America/New_York": (2026, 3, 3, 8, 0), "Asia/Tokyo": (2026, 3, 3, 8, 0)}
    assert task.due_at == local(zone, *expected[zone])
    assert "#home #garden" in body["assistant_message"]["content"]
    assert "repeats weekly" in body["assistant_message"]["content"]


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize(
    "message, repeat",
    [("every day", "daily"), ("every week", "weekly"), ("every month", "monthly")],
)
def test_every_day_week_month_repeat(api_client, user, zone, message, repeat):
    in_zone(user, zone)

    turn(api_client, f"add take vitamins {message}")

    task = Task.objects.get()
    assert (task.title, task.repeat) == ("take vitamins", repeat)
    assert task.due_at is not None


def make_dated(user, zone):
    """Tasks around the clock's day in `zone`: overdue, today, tomorrow, undated, done."""
    today = NOW.astimezone(ZoneInfo(zone)).date()

    def at(days, hour):
        day = today + timedelta(days=days)
        return local(zone, day.year, day.month, day.day, hour, 0)

    return {
        "overdue": TaskFactory(owner=user, title="Overdue", due_at=NOW - timedelta(days=2)),
        "today": TaskFactory(owner=user, title="Today", due_at=at(0, 23), tags=["work"]),
        "tomorrow": TaskFactory(
            owner=user, title="Tomorrow", due_at=at(1, 12), priority="high", tags=["work"]
        ),
        "undated": TaskFactory(owner=user, title="Undated", priority="high", tags=["home"]),
        "done": TaskFactory(owner=user, title="Done", due_at=at(0, 22), completed=True),
    }


def listed_ids(body):
    [call] = body["tool_calls"]
    assert call["name"] == "list_tasks"
    return [t["id"] for t in call["result"]["tasks"]]


@pytest.mark.parametrize("zone", ZONES)
def test_whats_due_today(api_client, user, other_user, zone):
    in_zone(user, zone)
    tasks = make_dated(user, zone)
    TaskFactory(owner=other_user, title="Not mine", due_at=NOW + timedelta(hours=1))

    body = turn(api_client, "what's due today?")

    assert listed_ids(body) == [tasks["today"].pk]
    text = body["assistant_message"]["content"]
    assert text.startswith("Here's what's due today:")
    assert "today at 11:00 PM" in text


@pytest.mark.parametrize("zone", ZONES)
def test_whats_overdue(api_client, user, zone):
    in_zone(user, zone)
    tasks = make_dated(user, zone)

    body = turn(api_client, "What's overdue?")

    assert listed_ids(body) == [tasks["overdue"].pk]
    assert body["assistant_message"]["content"].startswith("Here's what's overdue:")


def test_nothing_overdue_says_so(api_client, user):
    body = turn(api_client, "what's overdue?")

    assert body["assistant_message"]["content"] == "Nothing is overdue. Nice!"


@pytest.mark.parametrize("zone", ZONES)
def test_show_my_tagged_tasks(api_client, user, zone):
    in_zone(user, zone)
    tasks = make_dated(user, zone)

    body = turn(api_client, "show my #work tasks")

    assert sorted(listed_ids(body)) == sorted([tasks["today"].pk, tasks["tomorrow"].pk])
    assert body["assistant_message"]["content"].startswith("Here are your #work tasks:")


@pytest.mark.parametrize("zone", ZONES)
def test_high_priority_tasks(api_client, user, zone):
    in_zone(user, zone)
    tasks = make_dated(user, zone)

    body = turn(api_client, "high priority tasks")

    assert sorted(listed_ids(body)) == sorted([tasks["tomorrow"].pk, tasks["undated"].pk])
    text = body["assistant_message"]["content"]
    assert text.startswith("Here are your high priority tasks:")
    assert "due tomorrow at 12:00 PM" in text


def test_a_task_number_is_not_a_tag(api_client, user):
    task = TaskFactory(owner=user, title="Buy milk")

    body = turn(api_client, f"mark #{task.pk} as done")

    task.refresh_from_db()
    assert task.completed
    assert body["tool_calls"][0]["name"] == "complete_task"


def test_completing_a_repeating_task_in_the_chat_adds_the_next(api_client, user):
    in_zone(user, "America/New_York")
    task = TaskFactory(owner=user, title="Stretch", due_at=NOW, repeat="daily")

    body = turn(api_client, "I finished stretch")
    retried = turn(api_client, f"mark {task.pk} as done")

    assert "next one is on your list" in body["assistant_message"]["content"]
    assert "already done" in retried["assistant_message"]["content"]
    following = Task.objects.get(follows=task.pk)
    assert following.due_at == NOW + timedelta(days=1)


@pytest.mark.parametrize("zone", ZONES)
def test_the_openai_agent_is_told_the_time_and_zone(zone):
    prompt = system_prompt(TurnContext(now=NOW, zone=ZoneInfo(zone)))

    local_now = NOW.astimezone(ZoneInfo(zone))
    assert local_now.isoformat(timespec="minutes") in prompt
    assert zone in prompt
    assert local_now.strftime("%A") in prompt


# (message, zone) -> the new due_at of the task "Call mom" ({id} stands for its id).
MOVED = {
    ("move call mom to friday", "America/New_York"): (2026, 3, 6, 9, 0),
    ("move call mom to friday", "Asia/Tokyo"): (2026, 3, 6, 9, 0),
    ("reschedule #{id} to tomorrow at 9am", "America/New_York"): (2026, 3, 3, 9, 0),
    ("reschedule #{id} to tomorrow at 9am", "Asia/Tokyo"): (2026, 3, 4, 9, 0),
    ("postpone call mom to next monday", "America/New_York"): (2026, 3, 9, 9, 0),
    ("postpone call mom to next monday", "Asia/Tokyo"): (2026, 3, 9, 9, 0),
    ("please push call mom back to 5:30pm", "America/New_York"): (2026, 3, 2, 17, 30),
    ("please push call mom back to 5:30pm", "Asia/Tokyo"): (2026, 3, 3, 17, 30),
}


@pytest.mark.parametrize("message, zone", list(MOVED))
def test_moving_a_tasks_due_date_in_the_users_zone(api_client, user, other_user, message, zone):
    in_zone(user, zone)
    task = TaskFactory(owner=user, title="Call mom", due_at=NOW + timedelta(hours=2))
    TaskFactory(owner=user, title="Buy milk", due_at=NOW)
    theirs = TaskFactory(owner=other_user, title="Call mom", due_at=NOW)

    body = turn(api_client, message.format(id=task.pk))

    task.refresh_from_db()
    assert task.due_at == local(zone, *MOVED[(message, zone)])
    assert task.title == "Call mom"
    [*_, call] = body["tool_calls"]
    assert call["name"] == "update_task"
    assert call["arguments"] == {
        "task_id": task.pk,
        "due_at": task.due_at.isoformat().replace("+00:00", "Z"),
    }
    clock = task.due_at.astimezone(ZoneInfo(zone)).strftime("%I:%M %p").lstrip("0")
    text = body["assistant_message"]["content"]
    assert text.startswith(f"Moved “Call mom” (#{task.pk}) to ")
    assert text.endswith(f" at {clock}.")
    theirs.refresh_from_db()
    assert theirs.due_at == NOW


def test_moving_a_task_keeps_a_to_inside_its_title(api_client, user):
    in_zone(user, "Asia/Tokyo")
    task = TaskFactory(owner=user, title="Talk to Bob")

    body = turn(api_client, "move talk to bob to friday at 5pm")

    task.refresh_from_db()
    assert task.due_at == local("Asia/Tokyo", 2026, 3, 6, 17, 0)
    assert "Fri Mar 6 at 5:00 PM" in body["assistant_message"]["content"]


def test_moving_another_users_task_by_number_is_not_found(api_client, user, other_user):
    theirs = TaskFactory(owner=other_user, title="Call mom", due_at=NOW)

    body = turn(api_client, f"reschedule #{theirs.pk} to tomorrow")

    theirs.refresh_from_db()
    assert theirs.due_at == NOW
    assert f"couldn't find task #{theirs.pk}" in body["assistant_message"]["content"]


def test_moving_to_something_that_is_not_a_date_is_not_a_reschedule(api_client, user):
    task = TaskFactory(owner=user, title="Call mom", due_at=NOW)

    body = turn(api_client, "move call mom to the top")

    task.refresh_from_db()
    assert task.due_at == NOW
    assert body["tool_calls"] == []
