"""A filtered task page is compiled once per shape and run with each request's values.

The shape is which filters are present, the ordering, first page or after a cursor,
and the page size; the owner and the filters' values are parameters. These tests
count compilations and check that no value is frozen into a reused query: every
request of a shared shape gets its own owner's rows for its own values.
"""

from datetime import UTC, datetime, timedelta

import pytest

from core import compiled
from core.compiled import CompiledQueries
from core.pagination import KeysetPagination
from tasks.models import Task
from testing.factories import TaskFactory

pytestmark = pytest.mark.django_db

TASKS = "/api/v1/tasks/"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def compilations(monkeypatch):
    """The task queries compiled from now on (the paginator's LRU starts empty)."""
    monkeypatch.setattr(KeysetPagination, "compiled_pages", CompiledQueries())
    made = []

    class Counted(compiled._Compiled):
        def __init__(self, queryset, connection):
            super().__init__(queryset, connection)
            if queryset.model is Task:
                made.append(queryset.model)

    monkeypatch.setattr(compiled, "_Compiled", Counted)
    return made


@pytest.fixture
def tasks(user, other_user):
    """Tasks of two users, each with a due date a day apart, priorities and tags."""
    specs = [
        ("high", ["home"], False),
        ("low", ["work"], True),
        ("normal", ["home", "work"], False),
        ("high", ["work", "bills"], True),
        ("low", [], False),
    ]
    made = {}
    for owner in (user, other_user):
        made[owner.pk] = [
            TaskFactory(
                owner=owner,
                due_at=T0 + timedelta(days=day),
                priority=priority,
                tags=tags,
                completed=completed,
            )
            for day, (priority, tags, completed) in enumerate(specs)
        ]
    return made


def ids(client, url):
    response = client.get(url)
    assert response.status_code == 200, response.content[:300]
    return [task["id"] for task in response.json()["results"]]


@pytest.mark.parametrize(
    "queries, wanted",
    [
        (
            ["tag=home", "tag=work", "tag=work&tag=home", "tag=bills"],
            [
                lambda t: "home" in t.tags,
                lambda t: "work" in t.tags,
                lambda t: {"home", "work"} <= set(t.tags),
                lambda t: "bills" in t.tags,
            ],
        ),
        (
            ["priority=high", "priority=low", "priority=normal"],
            [
                lambda t: t.priority == "high",
                lambda t: t.priority == "low",
                lambda t: t.priority == "normal",
            ],
        ),
        (
            ["completed=true", "completed=false"],
            [lambda t: t.completed, lambda t: not t.completed],
        ),
        (
            ["due_after=2026-03-03T12:00:00Z", "due_after=2026-03-02T00:00:00%2B09:00"],
            [
                lambda t: t.due_at >= T0 + timedelta(days=2),
                lambda t: t.due_at >= T0 + timedelta(hours=3),
            ],
        ),
        (
            [
                "ordering=due_at&due_before=2026-03-03T12:00:00Z&priority=high&tag=home",
                "ordering=due_at&due_before=2026-03-06T00:00:00Z&priority=high&tag=work",
                "ordering=due_at&due_before=2026-03-06T00:00:00Z&priority=low&tag=work",
            ],
            [
                lambda t: (
                    t.due_at < T0 + timedelta(days=2) and t.priority == "high" and "home" in t.tags
                ),
                lambda t: t.priority == "high" and "work" in t.tags,
                lambda t: t.priority == "low" and "work" in t.tags,
            ],
        ),
    ],
)
def test_one_compiled_query_per_filter_shape_serves_every_value_and_owner(
    api_client, other_client, user, other_user, tasks, compilations, queries, wanted
):
    for client, owner in ((api_client, user), (other_client, other_user)):
        for query, keep in zip(queries, wanted, strict=True):
            expected = sorted(t.pk for t in tasks[owner.pk] if keep(t))
            assert expected, query  # each case must select something
            assert sorted(ids(client, f"{TASKS}?{query}")) == expected, query

    assert len(compilations) == 1


def test_first_page_and_later_pages_are_two_shapes(api_client, tasks, compilations):
    url = f"{TASKS}?tag=work&ordering=-priority&page_size=1"
    seen = []
    while url:
        body = api_client.get(url).json()
        seen += [task["id"] for task in body["results"]]
        url = body["next"]

    mine = next(iter(tasks.values()))
    assert sorted(seen) == sorted(t.pk for t in mine if "work" in t.tags)
    assert len(seen) == 3
    assert len(compilations) == 2


def test_a_search_is_compiled_per_request_and_still_combines_with_filters(
    api_client, user, compilations
):
    TaskFactory(owner=user, title="pay the invoice", priority="high")
    TaskFactory(owner=user, title="file the invoice", priority="low")
    TaskFactory(owner=user, title="pay rent", priority="high")

    for _ in range(2):
        titles = [
            task["title"]
            for task in api_client.get(f"{TASKS}?search=invoice&priority=high").json()["results"]
        ]
        assert titles == ["pay the invoice"]

    assert len(compilations) == 2
