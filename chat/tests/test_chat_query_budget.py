"""Every endpoint costs a fixed number of queries, whatever the page size or data.

At most 3 per read and 6 per write, authentication included (API issue #4).
"""

import uuid

import pytest

from chat import events
from testing.api import READ_BUDGET, WRITE_BUDGET
from testing.factories import ConversationFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "query", ["?page_size=1", "?page_size=1000", "?ordering=-seq&page_size=100"]
)
def test_message_reads_stay_within_budget(api_client, populated, query, assert_max_queries):
    conversation = populated[1][0]
    url = f"/api/v1/conversations/{conversation.pk}/messages/{query}"
    with assert_max_queries(READ_BUDGET):
        response = api_client.get(url)
    assert response.status_code == 200


def test_idempotent_retry_stays_within_budget(api_client, populated, assert_max_queries):
    conversation = populated[1][0]
    payload = {"role": "user", "content": "hi", "client_id": str(uuid.uuid4())}
    url = f"/api/v1/conversations/{conversation.pk}/messages/"
    api_client.post(url, payload)
    with assert_max_queries(WRITE_BUDGET):
        assert api_client.post(url, payload).status_code == 200


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_chat_turn_with_a_tool_call_sends_at_most_20_statements(api_client, user, monkeypatch):
    """Streaming issue: a turn, events included, in at most 20 statements (it was 52).

    Counted as PostgreSQL receives them, BEGIN and COMMIT included: the token's
    user; the claim (BEGIN, the user's message, the turn, `turn.started`, COMMIT);
    the time zone and the history; the step with its call (BEGIN, the turn's lock,
    the step, the task, the result, `tool.call` + `tool.result`, COMMIT); the reply
    (BEGIN, the reply, the turn's status, the deltas + `turn.done`, COMMIT). A reply
    that takes longer than `FLUSH_SECONDS` sends its deltas earlier, one INSERT each.
    """
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    monkeypatch.setattr(events, "FLUSH_SECONDS", 60)  # however slow this machine is
    conversation = ConversationFactory(owner=user)
    api_client.get("/api/v1/auth/me/")  # claims the user's throttle block
    with CaptureQueriesContext(connection) as captured:
        response = api_client.post(
            "/api/v1/chat/",
            {"message": "add buy milk", "conversation_id": conversation.pk},
            format="json",
        )

    assert response.status_code == 200
    assert [c["name"] for c in response.json()["tool_calls"]] == ["add_task"]
    assert len(captured.captured_queries) <= 20, "\n".join(
        q["sql"][:120] for q in captured.captured_queries
    )
