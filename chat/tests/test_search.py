"""Search of messages and conversations through HTTP, on both databases.

The meaning (chat/search.py): every word must begin a word of the text, ignoring
case and accents; no character the user types is query syntax.
"""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from chat.models import Conversation, Message
from chat.selectors import MESSAGE_FIELDS
from chat.services import message_append
from testing.api import READ_BUDGET
from testing.factories import ConversationFactory, UserFactory

pytestmark = pytest.mark.django_db

MESSAGES = "/api/v1/messages/"
CONVERSATIONS = "/api/v1/conversations/"


def say(conversation, content, role="user"):
    return message_append(
        owner=conversation.owner, conversation_id=conversation.pk, role=role, content=content
    )[0]


def found(client, search, url=MESSAGES, **params):
    response = client.get(url, {"search": search, **params})
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["results"]]


@pytest.fixture
def chat(user):
    return ConversationFactory(owner=user, title="Weekend plans")


def test_a_words_beginning_matches_and_not_its_middle(api_client, chat):
    milk = say(chat, "Buy milk and bread")

    assert found(api_client, "mil") == [milk.pk]
    assert found(api_client, "milk") == [milk.pk]
    assert found(api_client, "ilk") == []
    assert found(api_client, "milky") == []


def test_every_word_must_match(api_client, chat):
    both = say(chat, "milk and eggs")
    say(chat, "milk only")
    say(chat, "eggs only")

    assert found(api_client, "milk eggs") == [both.pk]
    assert found(api_client, "eggs   MILK") == [both.pk]


@pytest.mark.parametrize(
    ("content", "search"),
    [
        ("Crème brûlée", "creme brulee"),
        ("creme brulee", "Crème BRÛLÉE"),
        ("ÉCOLE", "école"),
        ("Straße", "strasse"),
        ("Smørrebrød", "smorrebrod"),
    ],
)
def test_case_and_accents_do_not_matter(api_client, chat, content, search):
    message = say(chat, content)

    assert found(api_client, search) == [message.pk]


def test_newest_first_with_conversation_and_snippet(api_client, user, chat):
    other_chat = ConversationFactory(owner=user)
    first = say(chat, "call mom about the trip")
    second = say(other_chat, "mom called back")

    body = api_client.get(MESSAGES, {"search": "mom"}).json()

    assert [m["id"] for m in body["results"]] == [second.pk, first.pk]
    assert [m["conversation"] for m in body["results"]] == [other_chat.pk, chat.pk]
    assert body["results"][1]["snippet"] == "call mom about the trip"
    assert tuple(body["results"][0]) == (*MESSAGE_FIELDS, "snippet")


def test_snippet_of_a_long_message_is_around_the_match(api_client, chat):
    content = "lorem ipsum " * 100 + "remember the Pineapple pizza " + "dolor sit " * 100
    say(chat, content)

    [result] = api_client.get(MESSAGES, {"search": "pine"}).json()["results"]

    assert "Pineapple" in result["snippet"]
    assert result["snippet"].startswith("…") and result["snippet"].endswith("…")
    assert len(result["snippet"]) <= 170
    assert result["content"] == content


def test_tool_calls_come_back_as_stored(api_client, chat):
    message_append(
        owner=chat.owner,
        conversation_id=chat.pk,
        role="assistant",
        content="Added buy milk",
        tool_calls=[{"name": "add_task", "arguments": {"title": "buy milk"}}],
    )

    [result] = api_client.get(MESSAGES, {"search": "added"}).json()["results"]

    assert result["tool_calls"] == [{"name": "add_task", "arguments": {"title": "buy milk"}}]


def test_another_users_messages_are_never_found(api_client, other_client, chat, other_user):
    theirs = ConversationFactory(owner=other_user, title="secret milk")
    say(theirs, "secret milk recipe")
    mine = say(chat, "milk")

    assert found(api_client, "milk") == [mine.pk]
    assert found(api_client, "secret") == []
    assert found(api_client, "secret", url=CONVERSATIONS) == []
    assert found(other_client, "milk", url=CONVERSATIONS) == [theirs.pk]


@pytest.mark.parametrize(
    "search",
    [
        "&",
        "|",
        "!",
        ":",
        "*",
        "(",
        ")",
        "\\",
        "'",
        '"',
        "&|!:*()\\'\"",
        "milk:*",
        "!milk",
        "milk | eggs",
        "milk & !eggs",
        "'milk'",
        '"milk"',
        "(milk)",
        "milk\\",
        "o'brien",
        "<->",
        "%",
        "_",
        "milk%",
        "ŉ",
        "🥛",
        "\u0301",
        "a" * 256,
    ],
)
def test_operator_characters_are_plain_text(api_client, chat, search):
    say(chat, "milk and eggs, o'brien's 50% off")

    for url in (MESSAGES, CONVERSATIONS):
        response = api_client.get(url, {"search": search})
        assert response.status_code == 200, (url, response.content)


def test_operators_between_words_are_just_separators(api_client, chat):
    both = say(chat, "milk and eggs")
    say(chat, "only milk")

    assert found(api_client, "milk & eggs") == [both.pk]
    assert found(api_client, "milk | eggs") == [both.pk]
    assert found(api_client, "(milk) !eggs:*") == [both.pk]
    assert found(api_client, "'milk'") == found(api_client, "milk")
    assert found(api_client, "%") == []
    assert found(api_client, "&|!") == []


@pytest.mark.parametrize("url", [MESSAGES, CONVERSATIONS])
@pytest.mark.parametrize("search", ["milk\x00", "\x00"])
def test_nul_is_400(api_client, chat, url, search):
    response = api_client.get(url, {"search": search})

    assert response.status_code == 400
    assert "NUL" in response.json()["detail"]


@pytest.mark.parametrize("url", [MESSAGES, CONVERSATIONS])
def test_longer_than_256_characters_is_400(api_client, url):
    response = api_client.get(url, {"search": "a" * 257})

    assert response.status_code == 400


@pytest.mark.parametrize("query", ["", "?search=", "?search=%20%20"])
def test_without_words_messages_lists_all_of_the_callers_newest_first(
    api_client, user, other_user, query
):
    first = say(ConversationFactory(owner=user), "one")
    second = say(ConversationFactory(owner=user), "two")
    say(ConversationFactory(owner=other_user), "theirs")

    body = api_client.get(MESSAGES + query).json()

    assert [m["id"] for m in body["results"]] == [second.pk, first.pk]
    assert body["results"][0]["snippet"] == "two"


def test_message_search_needs_a_token(anon_client):
    assert anon_client.get(MESSAGES, {"search": "milk"}).status_code == 401


def test_message_search_pages_walk_every_match_exactly_once(api_client, user):
    chats = [ConversationFactory(owner=user) for _ in range(3)]
    matching = [say(chats[i % 3], f"milk number {i}") for i in range(11)]
    say(chats[0], "nothing to see")
    # Ties on created_at are broken by id.
    same = timezone.now() - timedelta(hours=1)
    Message.objects.filter(pk__in=[m.pk for m in matching[:5]]).update(created_at=same)

    seen, url, pages = [], f"{MESSAGES}?search=milk&page_size=4", 0
    while url:
        body = api_client.get(url).json()
        seen += [m["id"] for m in body["results"]]
        url, pages = body["next"], pages + 1

    newest_first = [m.pk for m in reversed(matching[5:])] + [m.pk for m in reversed(matching[:5])]
    assert seen == newest_first
    assert pages == 3


def test_message_search_previous_link(api_client, chat):
    for i in range(5):
        say(chat, f"milk {i}")
    first = api_client.get(MESSAGES, {"search": "milk", "page_size": 2}).json()
    second = api_client.get(first["next"]).json()

    back = api_client.get(second["previous"]).json()

    assert [m["id"] for m in back["results"]] == [m["id"] for m in first["results"]]


def test_message_search_is_the_users_query_and_one_more(api_client, chat, assert_max_queries):
    for i in range(30):
        say(chat, f"milk {i}")

    with assert_max_queries(READ_BUDGET):
        response = api_client.get(MESSAGES, {"search": "milk", "page_size": 100})

    assert len(response.json()["results"]) == 30


def test_conversation_found_by_title_or_by_a_message(api_client, user):
    by_title = ConversationFactory(owner=user, title="Milk run")
    by_message = ConversationFactory(owner=user, title="Errands")
    say(by_message, "do not forget the milk")
    neither = ConversationFactory(owner=user, title="Milky way")
    say(neither, "stars")

    assert sorted(found(api_client, "milk", url=CONVERSATIONS)) == sorted(
        [by_title.pk, by_message.pk, neither.pk]
    )
    assert found(api_client, "milk forget", url=CONVERSATIONS) == [by_message.pk]
    assert found(api_client, "milk run", url=CONVERSATIONS) == [by_title.pk]


def test_conversation_matched_by_many_messages_is_listed_once(api_client, chat):
    for i in range(5):
        say(chat, f"milk {i}")

    assert found(api_client, "milk", url=CONVERSATIONS) == [chat.pk]


def test_conversation_search_leaves_archived_out_unless_asked(api_client, user):
    kept = ConversationFactory(owner=user, title="milk")
    archived = ConversationFactory(owner=user, title="milk too", archived=True)

    assert found(api_client, "milk", url=CONVERSATIONS) == [kept.pk]
    assert found(api_client, "milk", url=CONVERSATIONS, archived="true") == [archived.pk]


def test_conversation_search_is_most_recent_activity_first_and_walks_once(api_client, user):
    start = timezone.now() - timedelta(days=1)
    made = []
    for i in range(7):
        conversation = ConversationFactory(owner=user, title=f"milk {i}", pinned=i == 0)
        Conversation.objects.filter(pk=conversation.pk).update(
            updated_at=start + timedelta(minutes=i)
        )
        made.append(conversation)
    ConversationFactory(owner=user, title="bread")

    seen, url = [], f"{CONVERSATIONS}?search=milk&page_size=3"
    while url:
        body = api_client.get(url).json()
        seen += [c["id"] for c in body["results"]]
        url = body["next"]

    assert seen == [c.pk for c in reversed(made)]


@pytest.mark.parametrize("walk", [0, 1, 3, 50])
def test_conversations_past_the_walk_are_found_as_within_it(api_client, user, monkeypatch, walk):
    """chat.search.InMatchingMessage checks the first conversations one at a time and
    the rest from the owner's matching messages: every cut gives the same pages."""
    monkeypatch.setattr("chat.search.WALK_CONVERSATIONS", walk)
    start = timezone.now() - timedelta(days=1)
    expected = []
    for i in range(8):
        conversation = ConversationFactory(owner=user, title=f"day {i}")
        say(conversation, "buy milk" if i % 3 else "nothing to buy")
        say(conversation, "and bread")
        Conversation.objects.filter(pk=conversation.pk).update(
            updated_at=start + timedelta(minutes=i)
        )
        if i % 3:
            expected.insert(0, conversation.pk)
    say(ConversationFactory(owner=UserFactory()), "milk for someone else")

    seen, url = [], f"{CONVERSATIONS}?search=mil&page_size=2"
    while url:
        body = api_client.get(url).json()
        seen += [c["id"] for c in body["results"]]
        url = body["next"]

    assert seen == expected


def test_conversation_search_query_count(api_client, chat, assert_max_queries):
    say(chat, "milk")

    with assert_max_queries(READ_BUDGET):
        response = api_client.get(CONVERSATIONS, {"search": "milk"})

    assert [c["id"] for c in response.json()["results"]] == [chat.pk]


def test_admin_searches_messages_and_conversations_the_same_way(user, chat):
    staff = UserFactory(is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    say(chat, "Crème brûlée for dessert")
    other = ConversationFactory(owner=user, title="Nothing here")
    say(other, "unrelated")

    messages = client.get("/admin/chat/message/", {"q": "creme brul"}).content.decode()
    conversations = client.get("/admin/chat/conversation/", {"q": "CREME"}).content.decode()
    by_owner = client.get("/admin/chat/conversation/", {"q": user.username}).content.decode()
    with_nul = client.get("/admin/chat/message/", {"q": "creme\x00"})

    assert "Crème brûlée" in messages and "unrelated" not in messages
    assert "Weekend plans" in conversations and "Nothing here" not in conversations
    assert "Weekend plans" in by_owner and "Nothing here" in by_owner
    assert with_nul.status_code == 200
