"""PostgreSQL answers the new orderings and filters with index scans and no sort.

A few thousand tasks (one user's, among other users'), analyzed; each list request's
page query is run under EXPLAIN. The orderings `due_at` and `-priority` (alone, with
`?completed=`, and with a due span) must walk their composite index in order: an
Index Scan on it and no Sort node. A tag filter must use an index (the GIN index or
an ordered walk), whichever the planner finds cheaper. No `enable_seqscan = off`:
these are the plans the planner picks by itself.

A tag on one task in five is answered by walking the newest tasks (a page in
about a hundred index entries); a rare tag by the GIN index and a sort of its few
matches (bench/README.md, "Filtered task pages", has both plans measured).
"""

import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tasks.models import Task
from testing.factories import UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

TASKS = "/api/v1/tasks/"
T0 = datetime(2026, 3, 1, tzinfo=UTC)
TAGS = ["home", "work", "bills", "garden", "family"]


@pytest.fixture
def many_tasks(user):
    rng = random.Random(16)
    others = [UserFactory() for _ in range(3)]
    rows = []
    for owner in [user, *others]:
        for i in range(3000):
            rows.append(
                Task(
                    owner=owner,
                    title=f"task {i}",
                    due_at=None if i % 3 == 0 else T0 + timedelta(hours=rng.randrange(24 * 90)),
                    priority=rng.choice(["low", "normal", "normal", "high"]),
                    tags=rng.sample(TAGS, rng.randrange(3)),
                    completed=rng.random() < 0.3,
                )
            )
    Task.objects.bulk_create(rows, batch_size=2000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE tasks_task")
    return user


def page_query_plan(api_client, url):
    """The EXPLAIN (FORMAT JSON) plan of the query that reads the page's tasks."""
    with CaptureQueriesContext(connection) as captured:
        response = api_client.get(url)
    assert response.status_code == 200, response.content
    [sql] = [q["sql"] for q in captured.captured_queries if 'FROM "tasks_task"' in q["sql"]]
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql)
        plan = cursor.fetchone()[0]
    return (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"], response.json()


def nodes(plan):
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


@pytest.mark.parametrize(
    "query, index",
    [
        ("ordering=due_at", "task_owner_due"),
        ("ordering=due_at&completed=false", "task_owner_status_due"),
        ("ordering=due_at&due_after=2026-04-01T00:00:00Z&due_before=2026-04-08T00:00:00Z", None),
        ("ordering=-priority", "task_owner_priority"),
        ("ordering=-priority&priority=high", "task_owner_priority"),
        # A tag on one task in five: walking the newest tasks finds a page at once.
        ("tag=work", "task_owner_created"),
        (
            "completed=false&priority=high&tag=work&ordering=due_at"
            "&due_after=2026-04-01T00:00:00Z&due_before=2026-04-08T00:00:00Z&page_size=2",
            None,
        ),
    ],
)
def test_new_orderings_walk_their_index_with_no_sort(api_client, many_tasks, query, index):
    plan, body = page_query_plan(api_client, f"{TASKS}?{query}")
    second, _ = page_query_plan(api_client, body["next"])

    for tree in (plan, second):
        types = [node["Node Type"] for node in nodes(tree)]
        assert "Sort" not in types and "Incremental Sort" not in types, types
        assert "Seq Scan" not in types, types
        scans = [node.get("Index Name") for node in nodes(tree) if "Index" in node["Node Type"]]
        assert scans, types
        if index:
            assert index in scans, scans
        else:
            assert any(name in ("task_owner_due", "task_owner_status_due") for name in scans)


def test_tag_filter_uses_an_index(api_client, many_tasks):
    plan, _ = page_query_plan(api_client, f"{TASKS}?tag=garden&tag=bills")

    types = [node["Node Type"] for node in nodes(plan)]
    assert "Seq Scan" not in types, types
    assert any("Index" in t for t in types), types
