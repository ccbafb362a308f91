"""Keyset pagination: walks see every object exactly once, also under inserts."""

import datetime

import pytest
from django.utils import timezone

from tasks.models import Task
from testing.api import walk
from testing.factories import TaskFactory

pytestmark = pytest.mark.django_db


def test_walk_sees_every_task_once_in_order(api_client, user):
    tasks = [TaskFactory(owner=user) for _ in range(23)]

    pages = walk(api_client, "/api/v1/tasks/?page_size=5")

    seen = [task_id for page in pages for task_id in page]
    assert seen == [t.pk for t in reversed(tasks)]
    assert [len(page) for page in pages] == [5, 5, 5, 5, 3]


def test_ties_on_the_sort_key_are_broken_by_id(api_client, user):
    same_time = timezone.now()
    tasks = [TaskFactory(owner=user) for _ in range(7)]
    Task.objects.filter(owner=user).update(created_at=same_time)

    pages = walk(api_client, "/api/v1/tasks/?page_size=3")

    assert [i for page in pages for i in page] == sorted((t.pk for t in tasks), reverse=True)


def test_walk_while_tasks_are_created_misses_none_and_repeats_none(api_client, user):
    existing = [TaskFactory(owner=user) for _ in range(10)]
    url = "/api/v1/tasks/?page_size=3&ordering=created_at"
    seen = []
    while url:
        body = api_client.get(url).json()
        seen += [item["id"] for item in body["results"]]
        TaskFactory(owner=user)  # appended at the end of this ordering
        url = body["next"]

    assert seen[:10] == [t.pk for t in existing]
    assert len(seen) == len(set(seen))


def test_previous_link_returns_the_previous_page(api_client, user):
    for _ in range(10):
        TaskFactory(owner=user)
    first = api_client.get("/api/v1/tasks/?page_size=4").json()
    second = api_client.get(first["next"]).json()

    back = api_client.get(second["previous"]).json()

    assert first["previous"] is None
    assert [t["id"] for t in back["results"]] == [t["id"] for t in first["results"]]
    assert back["next"] is not None


def test_filtered_walk_by_updated_at(api_client, user):
    base = timezone.now()
    for i in range(9):
        task = TaskFactory(owner=user, completed=i % 2 == 0)
        Task.objects.filter(pk=task.pk).update(updated_at=base + datetime.timedelta(seconds=i))

    pages = walk(api_client, "/api/v1/tasks/?completed=true&ordering=updated_at&page_size=2")

    ids = [i for page in pages for i in page]
    expected = list(
        Task.objects.filter(owner=user, completed=True)
        .order_by("updated_at")
        .values_list("id", flat=True)
    )
    assert ids == expected


def test_cursor_from_another_ordering_is_400(api_client, user):
    for _ in range(3):
        TaskFactory(owner=user)
    next_url = api_client.get("/api/v1/tasks/?page_size=1").json()["next"]

    response = api_client.get(next_url.replace("page_size=1", "page_size=1&ordering=created_at"))

    assert response.status_code == 400
    assert "cursor" in response.json()


@pytest.mark.parametrize(
    "cursor", ["garbage", "W10", "WyJuIiwiLWNyZWF0ZWRfYXQiLFsieCIsMV1d", "%00"]
)
def test_malformed_cursor_is_400(api_client, cursor):
    response = api_client.get(f"/api/v1/tasks/?cursor={cursor}")

    assert response.status_code == 400


@pytest.mark.parametrize(
    "page_size, status", [("1", 200), ("100", 200), ("101", 400), ("0", 400), ("x", 400)]
)
def test_task_page_size_bounds(api_client, page_size, status):
    assert api_client.get(f"/api/v1/tasks/?page_size={page_size}").status_code == status
