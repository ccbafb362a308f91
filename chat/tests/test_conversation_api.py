"""Conversations through HTTP."""

import pytest

from chat.models import Conversation, Message
from testing.factories import ConversationFactory, add_messages

pytestmark = pytest.mark.django_db

CONVERSATIONS = "/api/v1/conversations/"


def detail(conversation_id):
    return f"{CONVERSATIONS}{conversation_id}/"


def test_create_conversation_defaults(api_client, user):
    response = api_client.post(CONVERSATIONS, {})

    assert response.status_code == 201
    body = response.json()
    assert body["title"] == ""
    assert body["message_count"] == 0
    assert set(body) == {
        "id",
        "title",
        "created_at",
        "updated_at",
        "message_count",
        "archived",
        "pinned",
    }
    assert (body["archived"], body["pinned"]) == (False, False)
    assert Conversation.objects.get(pk=body["id"]).owner == user


def test_title_over_255_is_400(api_client):
    response = api_client.post(CONVERSATIONS, {"title": "t" * 256})

    assert response.status_code == 400
    assert "title" in response.json()
    assert not Conversation.objects.exists()


def test_patch_title_and_read_back(api_client, user):
    conversation = ConversationFactory(owner=user)

    response = api_client.patch(detail(conversation.pk), {"title": "Groceries"})

    assert response.status_code == 200
    assert api_client.get(detail(conversation.pk)).json()["title"] == "Groceries"


def test_message_count_is_read_only(api_client, user):
    conversation = ConversationFactory(owner=user)

    api_client.patch(detail(conversation.pk), {"message_count": 99})

    conversation.refresh_from_db()
    assert conversation.message_count == 0


def test_put_is_405(api_client, user):
    conversation = ConversationFactory(owner=user)

    response = api_client.put(detail(conversation.pk), {"title": "x"})

    assert response.status_code == 405
    assert "detail" in response.json()


def test_delete_removes_its_messages(api_client, user):
    conversation = ConversationFactory(owner=user)
    add_messages(conversation, 3)

    assert api_client.delete(detail(conversation.pk)).status_code == 204

    assert not Conversation.objects.filter(pk=conversation.pk).exists()
    assert not Message.objects.filter(conversation_id=conversation.pk).exists()


def test_list_is_most_recent_activity_first(api_client, user, other_user):
    older = ConversationFactory(owner=user, title="older")
    ConversationFactory(owner=user, title="newer")
    ConversationFactory(owner=other_user, title="theirs")
    add_messages(older, 1)

    titles = [c["title"] for c in api_client.get(CONVERSATIONS).json()["results"]]

    assert titles == ["older", "newer"]


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_other_users_conversation_is_404_and_unchanged(api_client, other_user, method):
    conversation = ConversationFactory(owner=other_user, title="theirs")
    add_messages(conversation, 2)

    response = getattr(api_client, method)(detail(conversation.pk), {"title": "mine now"})

    assert response.status_code == 404
    conversation.refresh_from_db()
    assert (conversation.title, conversation.message_count) == ("theirs", 2)
