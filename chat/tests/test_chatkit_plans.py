"""ChatKit's `threads.list` walks the owner's conversations by activity in an index.

Activity alone (not the REST list's archived and pinned first) is served by
`conversation_owner_activity` (owner, updated_at, id): an index scan with no Sort,
whatever the number of other users' conversations. No `enable_seqscan = off`.
"""

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chat.models import Conversation
from conftest import client_for
from testing.factories import UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def nodes(plan):
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def test_threads_list_walks_the_owners_activity_index_with_no_sort():
    users = [UserFactory() for _ in range(4)]
    now = timezone.now()
    Conversation.objects.bulk_create(
        Conversation(owner=owner, title=f"c{i}", updated_at=now - timedelta(minutes=i))
        for owner in users
        for i in range(2000)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE chat_conversation")
    client = client_for(users[0])
    body = {"type": "threads.list", "params": {"limit": 20, "order": "desc"}}
    with CaptureQueriesContext(connection) as captured:
        response = client.generic(
            "POST", "/api/v1/chatkit/", json.dumps(body), content_type="application/json"
        )
    assert response.status_code == 200, response.content
    assert len(response.json()["data"]) == 20
    [sql] = [q["sql"] for q in captured.captured_queries if "chat_conversation" in q["sql"]]
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql)
        (plan,) = cursor.fetchone()
    plan = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]
    kinds = [(node["Node Type"], node.get("Index Name")) for node in nodes(plan)]
    assert ("Index Scan", "conversation_owner_activity") in kinds or (
        "Index Only Scan",
        "conversation_owner_activity",
    ) in kinds, kinds
    assert not any(kind == "Sort" for kind, _ in kinds), kinds
