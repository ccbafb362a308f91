"""Archive and pin: the flags, the list they shape, its pages, and the chat turn."""

from datetime import timedelta

import pytest
from django.utils import timezone

from chat.models import Conversation, Message
from testing.api import READ_BUDGET
from testing.factories import ConversationFactory, add_messages

pytestmark = pytest.mark.django_db

CONVERSATIONS = "/api/v1/conversations/"


def detail(conversation_id):
    return f"{CONVERSATIONS}{conversation_id}/"


def walk(client, url):
    """Every page's ids, following `next` links to the end."""
    pages = []
    while url:
        body = client.get(url).json()
        pages.append([item["id"] for item in body["results"]])
        url = body["next"]
    return pages


def conversations_at(owner, count, *, start, **fields):
    """`count` conversations whose last activity is `start`, start + 1 s, ..."""
    made = []
    for i in range(count):
        conversation = ConversationFactory(owner=owner, **fields)
        Conversation.objects.filter(pk=conversation.pk).update(
            updated_at=start + timedelta(seconds=i)
        )
        made.append(conversation)
    return made


def test_patch_archived_and_pinned_and_read_back(api_client, user):
    conversation = ConversationFactory(owner=user)
    before = Conversation.objects.get(pk=conversation.pk).updated_at

    response = api_client.patch(detail(conversation.pk), {"archived": True, "pinned": True})

    assert response.status_code == 200
    assert (response.json()["archived"], response.json()["pinned"]) == (True, True)
    stored = Conversation.objects.get(pk=conversation.pk)
    assert (stored.archived, stored.pinned) == (True, True)
    assert stored.updated_at == before  # not activity: the list's recency order stays


@pytest.mark.parametrize("value", [1, 0, "true", "yes", None, [], {}])
@pytest.mark.parametrize("name", ["archived", "pinned"])
def test_flags_of_a_wrong_type_are_400(api_client, user, name, value):
    conversation = ConversationFactory(owner=user)

    response = api_client.patch(detail(conversation.pk), {name: value}, format="json")

    assert response.status_code == 400
    assert name in response.json()
    stored = Conversation.objects.get(pk=conversation.pk)
    assert (stored.archived, stored.pinned) == (False, False)


def test_create_with_flags(api_client, user):
    response = api_client.post(CONVERSATIONS, {"title": "t", "pinned": True, "archived": True})

    assert response.status_code == 201
    stored = Conversation.objects.get(pk=response.json()["id"])
    assert (stored.archived, stored.pinned) == (True, True)


def test_another_users_conversation_cannot_be_archived(api_client, other_user):
    conversation = ConversationFactory(owner=other_user)

    response = api_client.patch(detail(conversation.pk), {"archived": True})

    assert response.status_code == 404
    assert not Conversation.objects.get(pk=conversation.pk).archived


def test_list_leaves_archived_out_unless_asked_and_then_only_them(api_client, user, other_user):
    kept = ConversationFactory(owner=user, title="kept")
    archived = ConversationFactory(owner=user, title="archived", archived=True)
    ConversationFactory(owner=other_user, title="theirs", archived=True)

    default = [c["id"] for c in api_client.get(CONVERSATIONS).json()["results"]]
    only_archived = api_client.get(CONVERSATIONS + "?archived=true").json()["results"]
    explicit_false = api_client.get(CONVERSATIONS + "?archived=false").json()["results"]

    assert default == [kept.pk]
    assert [c["id"] for c in only_archived] == [archived.pk]
    assert only_archived[0]["archived"] is True
    assert [c["id"] for c in explicit_false] == [kept.pk]


@pytest.mark.parametrize("value", ["", "1", "yes", "True", "all"])
def test_archived_param_other_values_are_400(api_client, user, value):
    response = api_client.get(CONVERSATIONS + f"?archived={value}")

    assert response.status_code == 400
    assert "archived" in response.json()


def test_pinned_come_first_then_most_recent_activity(api_client, user):
    start = timezone.now() - timedelta(days=1)
    old_pinned = conversations_at(user, 1, start=start, pinned=True)[0]
    recent = conversations_at(user, 2, start=start + timedelta(hours=1))
    newest_pinned = conversations_at(user, 1, start=start + timedelta(hours=2), pinned=True)[0]

    ids = [c["id"] for c in api_client.get(CONVERSATIONS).json()["results"]]

    assert ids == [newest_pinned.pk, old_pinned.pk, recent[1].pk, recent[0].pk]


def test_pages_walk_pinned_then_others_exactly_once(api_client, user, other_user):
    start = timezone.now() - timedelta(days=1)
    pinned = conversations_at(user, 7, start=start, pinned=True)
    others = conversations_at(user, 9, start=start)
    conversations_at(user, 3, start=start, archived=True)
    conversations_at(other_user, 4, start=start)
    # Ties on the activity time are broken by id.
    Conversation.objects.filter(pk__in=[c.pk for c in others[:4]]).update(updated_at=start)

    pages = walk(api_client, CONVERSATIONS + "?page_size=3")

    seen = [i for page in pages for i in page]
    expected_others = sorted(others, key=lambda c: (c.pk not in {o.pk for o in others[:4]}, c.pk))
    assert seen == [c.pk for c in reversed(pinned)] + [c.pk for c in reversed(expected_others)]
    assert [len(page) for page in pages] == [3, 3, 3, 3, 3, 1]


def test_previous_link_walks_back_across_the_pinned_boundary(api_client, user):
    start = timezone.now() - timedelta(days=1)
    conversations_at(user, 2, start=start, pinned=True)
    conversations_at(user, 3, start=start)
    first = api_client.get(CONVERSATIONS + "?page_size=2").json()
    second = api_client.get(first["next"]).json()

    back = api_client.get(second["previous"]).json()

    assert [c["id"] for c in back["results"]] == [c["id"] for c in first["results"]]


def test_archived_pages_walk_exactly_once(api_client, user):
    start = timezone.now() - timedelta(days=1)
    archived = conversations_at(user, 5, start=start, archived=True)
    archived_pinned = conversations_at(user, 2, start=start, archived=True, pinned=True)
    conversations_at(user, 4, start=start)

    pages = walk(api_client, CONVERSATIONS + "?archived=true&page_size=2")

    seen = [i for page in pages for i in page]
    assert seen == [c.pk for c in reversed(archived_pinned)] + [c.pk for c in reversed(archived)]


def test_list_page_is_the_users_query_and_one_more(api_client, user, assert_max_queries):
    conversations_at(user, 5, start=timezone.now(), pinned=True)

    with assert_max_queries(READ_BUDGET):
        response = api_client.get(CONVERSATIONS + "?archived=true")

    assert response.status_code == 200


def test_chat_turn_on_an_archived_conversation_is_409_and_stores_nothing(api_client, user):
    conversation = ConversationFactory(owner=user, archived=True)
    add_messages(conversation, 1)

    response = api_client.post(
        "/api/v1/chat/", {"message": "add buy milk", "conversation_id": conversation.pk}
    )

    assert response.status_code == 409
    assert "archived" in response.json()["detail"]
    assert Message.objects.filter(conversation=conversation).count() == 1
    stored = Conversation.objects.get(pk=conversation.pk)
    assert (stored.archived, stored.message_count) == (True, 1)


def test_chat_turn_continues_a_conversation_once_unarchived(api_client, user):
    conversation = ConversationFactory(owner=user, archived=True)
    api_client.patch(detail(conversation.pk), {"archived": False})

    response = api_client.post(
        "/api/v1/chat/", {"message": "add buy milk", "conversation_id": conversation.pk}
    )

    assert response.status_code == 200
    assert response.json()["conversation_id"] == conversation.pk


def test_a_new_chat_turn_starts_an_unarchived_conversation(api_client, user):
    ConversationFactory(owner=user, archived=True)

    response = api_client.post("/api/v1/chat/", {"message": "add buy milk"})

    new = Conversation.objects.get(pk=response.json()["conversation_id"])
    assert (new.archived, new.pinned) == (False, False)
