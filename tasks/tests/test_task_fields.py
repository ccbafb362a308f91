"""Due dates, priorities, tags and repetition: the fields, their filters and orderings
(API.md "Tasks"), through HTTP, and the database's own checks."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import DataError, IntegrityError, transaction

from tasks.models import Task
from testing.factories import TaskFactory, UserFactory

pytestmark = pytest.mark.django_db

TASKS = "/api/v1/tasks/"
REFUSED = (IntegrityError, DataError)
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def walk(api_client, url):
    """Every task of a list, following `next` links: (ids in order, pages)."""
    ids, pages = [], 0
    while url:
        response = api_client.get(url)
        assert response.status_code == 200, response.json()
        body = response.json()
        ids += [task["id"] for task in body["results"]]
        url, pages = body["next"], pages + 1
    return ids, pages


def test_new_fields_round_trip_with_an_offset_normalized_to_utc(api_client):
    response = api_client.post(
        TASKS,
        {
            "title": "Pay rent",
            "due_at": "2026-03-01T09:30:00-05:00",
            "priority": "high",
            "tags": ["Home", "bills", "home"],
            "repeat": "monthly",
        },
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["due_at"] == "2026-03-01T14:30:00Z"
    assert body["priority"] == "high"
    assert body["tags"] == ["home", "bills"]
    assert body["repeat"] == "monthly"
    fetched = api_client.get(f"{TASKS}{body['id']}/").json()
    assert fetched == body


def test_ten_tags_of_32_characters_are_accepted(api_client):
    tags = [f"{i}" + "x" * 31 for i in range(10)]

    response = api_client.post(TASKS, {"title": "t", "tags": tags})

    assert response.status_code == 201
    assert response.json()["tags"] == tags


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"due_at": "tomorrow"}, "due_at"),
        ({"due_at": 5}, "due_at"),
        ({"due_at": "0001-01-01T00:00:00+05:00"}, "due_at"),
        ({"due_at": "9999-12-31T00:00:00Z"}, "due_at"),
        ({"priority": "urgent"}, "priority"),
        ({"priority": None}, "priority"),
        ({"tags": "home"}, "tags"),
        ({"tags": [""]}, "tags"),
        ({"tags": ["x" * 33]}, "tags"),
        ({"tags": ["two words"]}, "tags"),
        ({"tags": ["été"]}, "tags"),
        ({"tags": [5]}, "tags"),
        ({"tags": [f"t{i}" for i in range(11)]}, "tags"),
        ({"repeat": "yearly"}, "repeat"),
        ({"repeat": "daily"}, "repeat"),
        ({"repeat": "daily", "due_at": None}, "repeat"),
    ],
)
def test_bad_value_is_400_naming_the_field(api_client, payload, field):
    response = api_client.post(TASKS, {"title": "t", **payload})

    assert response.status_code == 400
    assert field in response.json()
    assert not Task.objects.exists()


def test_patch_repeat_needs_the_stored_due_at(api_client, user):
    task = TaskFactory(owner=user)
    dated = TaskFactory(owner=user, due_at=T0)

    refused = api_client.patch(f"{TASKS}{task.pk}/", {"repeat": "weekly"})
    accepted = api_client.patch(f"{TASKS}{dated.pk}/", {"repeat": "weekly"})
    undated = api_client.patch(f"{TASKS}{dated.pk}/", {"due_at": None})

    assert refused.status_code == 400 and "repeat" in refused.json()
    assert accepted.status_code == 200 and accepted.json()["repeat"] == "weekly"
    assert undated.status_code == 400 and "repeat" in undated.json()


@pytest.mark.parametrize(
    "fields",
    [
        {"priority": "urgent"},
        {"repeat": "daily"},
        {"repeat": "yearly", "due_at": T0},
        {"tags": ["UPPER"]},
        {"tags": ["a", "a"]},
        {"tags": [f"t{i}" for i in range(11)]},
        {"tags": ["x" * 33]},
        {"tags": "home"},
        {"tags": {"a": 1}},
    ],
)
def test_database_refuses_a_bad_task(fields):
    owner = UserFactory()
    with pytest.raises(REFUSED), transaction.atomic():
        Task.objects.bulk_create([Task(owner=owner, title="t", **fields)])
    assert not Task.objects.exists()


def test_database_accepts_good_tags():
    task = TaskFactory(tags=["a", "ab", "b-c_9"], priority="low", due_at=T0, repeat="daily")

    task.refresh_from_db()
    assert task.tags == ["a", "ab", "b-c_9"]
    assert task.priority_rank == 0
    assert task.due_rank == T0


@pytest.fixture
def dated_tasks(user):
    """Nine tasks: due in shuffled order, some with no due date, mixed priorities."""
    specs = [
        (5, "low", ["home"]),
        (None, "high", ["work"]),
        (1, "normal", ["home", "work"]),
        (3, "high", []),
        (None, "normal", ["home"]),
        (2, "high", ["home", "work"]),
        (4, "normal", ["work"]),
        (None, "low", []),
        (1, "low", ["home"]),
    ]
    return [
        TaskFactory(
            owner=user,
            due_at=None if days is None else T0 + timedelta(days=days),
            priority=priority,
            tags=tags,
        )
        for days, priority, tags in specs
    ]


def test_due_at_ordering_is_soonest_first_with_undated_last_across_pages(api_client, dated_tasks):
    ids, pages = walk(api_client, f"{TASKS}?ordering=due_at&page_size=2")

    def key(task):
        return (task.due_at is None, task.due_at or T0, task.pk)

    assert ids == [t.pk for t in sorted(dated_tasks, key=key)]
    assert pages == 5


def test_priority_ordering_is_high_first_then_newest_across_pages(api_client, dated_tasks):
    ids, _ = walk(api_client, f"{TASKS}?ordering=-priority&page_size=2")

    rank = {"high": 0, "normal": 1, "low": 2}
    expected = sorted(
        dated_tasks, key=lambda t: (rank[t.priority], -t.created_at.timestamp(), -t.pk)
    )
    assert ids == [t.pk for t in expected]


def test_previous_links_walk_back_through_the_due_ordering(api_client, dated_tasks):
    first = api_client.get(f"{TASKS}?ordering=due_at&page_size=4").json()
    second = api_client.get(first["next"]).json()
    back = api_client.get(second["previous"]).json()

    assert [t["id"] for t in back["results"]] == [t["id"] for t in first["results"]]


def test_filter_by_priority(api_client, dated_tasks):
    ids, _ = walk(api_client, f"{TASKS}?priority=high&page_size=2")

    assert sorted(ids) == sorted(t.pk for t in dated_tasks if t.priority == "high")


def test_filter_by_tags_needs_all_of_them(api_client, dated_tasks, other_user):
    TaskFactory(owner=other_user, tags=["home", "work"])

    both, _ = walk(api_client, f"{TASKS}?tag=home&tag=WORK&page_size=1")
    home, _ = walk(api_client, f"{TASKS}?tag=home")

    assert sorted(both) == sorted(t.pk for t in dated_tasks if {"home", "work"} <= set(t.tags))
    assert len(both) == 2
    assert sorted(home) == sorted(t.pk for t in dated_tasks if "home" in t.tags)


def test_filter_by_due_span_with_offsets_and_ordering(api_client, dated_tasks):
    # Day 1 at 12:00 UTC to day 4 at 12:00 UTC, written with other offsets.
    url = (
        f"{TASKS}?ordering=due_at&page_size=1&due_after=2026-03-02T21:00:00%2B09:00"
        f"&due_before=2026-03-05T07:00:00-05:00"
    )
    ids, _ = walk(api_client, url)

    wanted = [
        t
        for t in dated_tasks
        if t.due_at and T0 + timedelta(days=1) <= t.due_at < T0 + timedelta(days=4)
    ]
    assert ids == [t.pk for t in sorted(wanted, key=lambda t: (t.due_at, t.pk))]


def test_undated_tasks_never_match_a_due_filter(api_client, dated_tasks):
    ids, _ = walk(api_client, f"{TASKS}?due_before=9999-12-31T23:59:59Z")
    later, _ = walk(api_client, f"{TASKS}?due_after=0001-01-01T00:00:00Z")

    dated = sorted(t.pk for t in dated_tasks if t.due_at)
    assert sorted(ids) == dated
    assert sorted(later) == dated


def test_filters_combine_with_each_other_and_the_priority_ordering(api_client, dated_tasks):
    url = (
        f"{TASKS}?ordering=-priority&tag=home&completed=false"
        "&due_after=2026-03-02T00:00:00Z&page_size=1"
    )

    ids, _ = walk(api_client, url)

    wanted = [
        t
        for t in dated_tasks
        if "home" in t.tags and t.due_at and t.due_at >= T0 + timedelta(days=1)
    ]
    rank = {"high": 0, "normal": 1, "low": 2}
    assert ids == [t.pk for t in sorted(wanted, key=lambda t: (rank[t.priority], -t.pk))]


@pytest.mark.parametrize(
    "query, name",
    [
        ("priority=urgent", "priority"),
        ("tag=two%20words", "tag"),
        ("tag=" + "x" * 33, "tag"),
        ("due_before=soon", "due_before"),
        ("due_after=2026-13-01T00:00:00Z", "due_after"),
        ("ordering=-due_at", "ordering"),
    ],
)
def test_bad_filter_is_400_naming_the_parameter(api_client, query, name):
    response = api_client.get(f"{TASKS}?{query}")

    assert response.status_code == 400
    assert name in response.json()


def test_far_offsets_in_due_filters_are_not_500(api_client, dated_tasks):
    response = api_client.get(
        f"{TASKS}?due_after=0001-01-01T00:00:00%2B05:00&due_before=9999-12-31T23:00:00-05:00"
    )

    assert response.status_code == 200
    assert len(response.json()["results"]) == 6


def test_cursor_of_one_ordering_is_refused_by_another(api_client, dated_tasks):
    first = api_client.get(f"{TASKS}?ordering=due_at&page_size=2").json()
    cursor = first["next"].split("cursor=")[1].split("&")[0]

    response = api_client.get(f"{TASKS}?ordering=-priority&cursor={cursor}")

    assert response.status_code == 400
    assert "cursor" in response.json()


def test_filtered_and_ordered_page_is_three_queries_at_most(
    api_client, dated_tasks, django_assert_max_num_queries
):
    with django_assert_max_num_queries(3):
        response = api_client.get(
            f"{TASKS}?ordering=due_at&tag=home&priority=low&due_before=2027-01-01T00:00:00Z"
        )
    assert response.status_code == 200


def test_a_percent_sign_in_a_bad_tag_is_a_400(api_client):
    response = api_client.get(f"{TASKS}?tag=50%25%25off")

    assert response.status_code == 400
    assert "tag" in response.json()
