"""A conversation's messages through HTTP: append, idempotent retries, reads."""

import uuid

import pytest

from chat.models import Conversation, Message
from testing.factories import ConversationFactory, add_messages

pytestmark = pytest.mark.django_db


def messages_url(conversation_id):
    return f"/api/v1/conversations/{conversation_id}/messages/"


@pytest.fixture
def conversation(user):
    return ConversationFactory(owner=user)


def test_append_numbers_messages_and_moves_the_conversation(api_client, conversation):
    first = api_client.post(messages_url(conversation.pk), {"role": "user", "content": "hi"})
    second = api_client.post(
        messages_url(conversation.pk),
        {"role": "assistant", "content": "hello", "tool_calls": [{"name": "list_tasks"}]},
    )

    assert first.status_code == 201
    assert second.status_code == 201
    assert (first.json()["seq"], second.json()["seq"]) == (1, 2)
    assert second.json()["tool_calls"] == [{"name": "list_tasks"}]
    assert second.json()["conversation"] == conversation.pk
    conversation.refresh_from_db()
    assert conversation.message_count == 2
    assert conversation.updated_at >= conversation.created_at


def test_same_client_id_answers_200_with_the_stored_message(api_client, conversation):
    payload = {"role": "user", "content": "add milk", "client_id": str(uuid.uuid4())}

    first = api_client.post(messages_url(conversation.pk), payload)
    again = api_client.post(messages_url(conversation.pk), payload)

    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json() == first.json()
    assert Message.objects.filter(conversation=conversation).count() == 1


@pytest.mark.parametrize(
    "change",
    [{"content": "something else"}, {"role": "assistant"}, {"tool_calls": [1]}],
)
def test_client_id_reused_for_a_different_message_is_422(api_client, conversation, change):
    payload = {"role": "user", "content": "add milk", "client_id": str(uuid.uuid4())}
    api_client.post(messages_url(conversation.pk), payload)

    response = api_client.post(messages_url(conversation.pk), {**payload, **change})

    assert response.status_code == 422
    assert "client_id" in response.json()["detail"]
    assert Message.objects.filter(conversation=conversation).count() == 1


def test_same_client_id_in_another_conversation_is_a_new_message(api_client, user):
    client_id = str(uuid.uuid4())
    one, two = ConversationFactory(owner=user), ConversationFactory(owner=user)

    a = api_client.post(
        messages_url(one.pk), {"role": "user", "content": "x", "client_id": client_id}
    )
    b = api_client.post(
        messages_url(two.pk), {"role": "user", "content": "x", "client_id": client_id}
    )

    assert (a.status_code, b.status_code) == (201, 201)


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"role": "user"}, "content"),
        ({"role": "user", "content": ""}, "content"),
        ({"role": "user", "content": "x" * 10_001}, "content"),
        ({"role": "robot", "content": "x"}, "role"),
        ({"content": "x"}, "role"),
        ({"role": "user", "content": "x", "tool_calls": {"not": "a list"}}, "tool_calls"),
        ({"role": "user", "content": "x", "client_id": "not-a-uuid"}, "client_id"),
    ],
)
def test_invalid_message_is_400_and_stores_nothing(api_client, conversation, payload, field):
    response = api_client.post(messages_url(conversation.pk), payload)

    assert response.status_code == 400
    assert field in response.json()
    conversation.refresh_from_db()
    assert conversation.message_count == 0


def test_content_of_exactly_10000_characters_is_accepted(api_client, conversation):
    response = api_client.post(
        messages_url(conversation.pk), {"role": "user", "content": "x" * 10_000}
    )

    assert response.status_code == 201


def test_messages_list_in_seq_order_and_newest_first(api_client, conversation):
    add_messages(conversation, 5)

    in_order = api_client.get(messages_url(conversation.pk)).json()["results"]
    newest = api_client.get(messages_url(conversation.pk) + "?ordering=-seq&page_size=2").json()

    assert [m["seq"] for m in in_order] == [1, 2, 3, 4, 5]
    assert [m["seq"] for m in newest["results"]] == [5, 4]
    assert newest["next"] is not None


def test_after_seq_gives_only_later_messages(api_client, conversation):
    add_messages(conversation, 5)

    later = api_client.get(messages_url(conversation.pk) + "?after_seq=3").json()["results"]

    assert [m["seq"] for m in later] == [4, 5]


@pytest.mark.parametrize("value", ["-1", "abc", "99999999999999999999"])
def test_bad_after_seq_is_400(api_client, conversation, value):
    response = api_client.get(messages_url(conversation.pk) + f"?after_seq={value}")

    assert response.status_code == 400
    assert "after_seq" in response.json()


def test_message_page_size_bounds(api_client, conversation):
    add_messages(conversation, 3)

    assert api_client.get(messages_url(conversation.pk) + "?page_size=1000").status_code == 200
    assert api_client.get(messages_url(conversation.pk) + "?page_size=1001").status_code == 400
    assert api_client.get(messages_url(conversation.pk) + "?page_size=0").status_code == 400
    default = api_client.get(messages_url(conversation.pk)).json()
    assert len(default["results"]) == 3


def test_other_users_messages_are_404_and_unchanged(api_client, other_user):
    theirs = ConversationFactory(owner=other_user)
    add_messages(theirs, 2)

    read = api_client.get(messages_url(theirs.pk))
    write = api_client.post(messages_url(theirs.pk), {"role": "user", "content": "hi"})

    assert (read.status_code, write.status_code) == (404, 404)
    theirs.refresh_from_db()
    assert theirs.message_count == 2


def test_message_to_missing_conversation_is_404(api_client):
    response = api_client.post(messages_url(987654), {"role": "user", "content": "hi"})

    assert response.status_code == 404


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_messages_are_append_only(api_client, conversation, method):
    add_messages(conversation, 1)

    response = getattr(api_client, method)(messages_url(conversation.pk), {"content": "x"})

    assert response.status_code == 405
    assert Message.objects.get(conversation=conversation).content == "message 0"


def test_append_after_conversation_deleted_is_404(api_client, conversation):
    Conversation.objects.filter(pk=conversation.pk).delete()

    response = api_client.post(messages_url(conversation.pk), {"role": "user", "content": "hi"})

    assert response.status_code == 404
    assert not Message.objects.exists()


def test_listed_tool_calls_are_the_stored_json(api_client, conversation):
    """A page passes stored tool calls through unparsed; they read back as posted."""
    tool_calls = [
        {"id": "call_1", "name": "add_task", "arguments": {"title": "café ☕", "n": 1.5}},
        {"id": "call_2", "name": "list_tasks", "arguments": {}, "result": [[], {"a": None}]},
    ]
    appended = api_client.post(
        messages_url(conversation.pk),
        {"role": "assistant", "content": "done", "tool_calls": tool_calls},
    )
    api_client.post(messages_url(conversation.pk), {"role": "user", "content": "thanks"})

    listed = api_client.get(messages_url(conversation.pk)).json()["results"]

    assert appended.json()["tool_calls"] == tool_calls
    assert [message["tool_calls"] for message in listed] == [tool_calls, None]


def test_tool_calls_with_huge_numbers_are_answered_as_sent(api_client, conversation):
    """jsonb writes 1.4e154 out as 155 digits: the answer must not turn it into an
    integer no JSON writer can send (schemathesis found that 500)."""
    tool_calls = [1.394577918844222e154, -9007199254740992.0, 7, {"big": 2**63 - 1}]
    url = f"/api/v1/conversations/{conversation.pk}/messages/"

    response = api_client.post(
        url, {"role": "system", "content": "x", "tool_calls": tool_calls}, format="json"
    )

    assert response.status_code == 201, response.content
    assert response.json()["tool_calls"] == tool_calls
    listed = api_client.get(url).json()["results"][-1]["tool_calls"]
    assert [float(v) for v in listed[:3]] == tool_calls[:3]
