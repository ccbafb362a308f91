"""Export and import of an account as NDJSON, through HTTP."""

import uuid

import orjson
import pytest

from accounts import portability
from chat.models import Conversation, Message
from chat.services import message_append
from conftest import client_for
from tasks.models import Task
from testing.factories import ConversationFactory, TaskFactory, UserFactory

pytestmark = pytest.mark.django_db

EXPORT = "/api/v1/export/"
IMPORT = "/api/v1/import/"
NDJSON = "application/x-ndjson"


def exported(client):
    response = client.get(EXPORT)
    assert response.status_code == 200
    assert response["Content-Type"] == NDJSON
    body = b"".join(response.streaming_content)
    assert body.endswith(b"\n")
    return [orjson.loads(line) for line in body.splitlines()]


def post_import(client, body):
    if isinstance(body, list):
        body = b"".join(orjson.dumps(record) + b"\n" for record in body)
    return client.generic("POST", IMPORT, body, content_type=NDJSON)


def say(conversation, content, **fields):
    return message_append(
        owner=conversation.owner, conversation_id=conversation.pk, content=content, **fields
    )[0]


@pytest.fixture
def account(user, other_user):
    """Two tasks, three conversations (one empty, one archived and pinned), messages."""
    TaskFactory(owner=user, title="Buy milk", description="2 litres")
    TaskFactory(owner=user, title="Call mom", completed=True)
    groceries = ConversationFactory(owner=user, title="Groceries")
    say(groceries, "add buy milk", role="user", client_id=uuid.uuid4())
    say(
        groceries,
        "Added.",
        role="assistant",
        tool_calls=[{"id": "c1", "name": "add_task", "arguments": {"title": "buy milk"}}],
    )
    say(groceries, '{"ok": true}', role="tool", tool_calls=[{"id": "c1", "result": "ok"}])
    ConversationFactory(owner=user, title="")
    old = ConversationFactory(owner=user, title="Old ideas", archived=True, pinned=True)
    say(old, "Crème brûlée, 100% ✓", role="user")
    theirs = ConversationFactory(owner=other_user, title="theirs")
    say(theirs, "not yours", role="user")
    TaskFactory(owner=other_user, title="their task")
    return user


def test_export_is_user_then_tasks_then_each_conversation_with_its_messages(api_client, account):
    lines = exported(api_client)

    assert [line["type"] for line in lines] == [
        "user",
        "task",
        "task",
        "conversation",
        "message",
        "message",
        "message",
        "conversation",
        "conversation",
        "message",
    ]
    assert lines[0]["username"] == account.username
    assert "password" not in lines[0]
    conversations = [line for line in lines if line["type"] == "conversation"]
    assert [c["title"] for c in conversations] == ["Groceries", "", "Old ideas"]
    assert lines[4]["conversation"] == lines[3]["id"]
    assert [line["seq"] for line in lines[4:7]] == [1, 2, 3]
    assert lines[9]["conversation"] == lines[8]["id"]
    assert "theirs" not in str(lines) and "their task" not in str(lines)


def test_export_records_are_what_the_api_shows(api_client, account):
    lines = exported(api_client)
    by_type = {}
    for line in lines:
        by_type.setdefault(line.pop("type"), []).append(line)

    tasks = api_client.get("/api/v1/tasks/?ordering=created_at").json()["results"]
    conversations = api_client.get("/api/v1/conversations/").json()["results"]
    conversations += api_client.get("/api/v1/conversations/?archived=true").json()["results"]
    messages = []
    for conversation in sorted(conversations, key=lambda c: c["id"]):
        url = f"/api/v1/conversations/{conversation['id']}/messages/"
        messages += api_client.get(url).json()["results"]

    assert by_type["user"] == [api_client.get("/api/v1/auth/me/").json()]
    assert by_type["task"] == sorted(tasks, key=lambda t: t["id"])
    assert by_type["conversation"] == sorted(conversations, key=lambda c: c["id"])
    assert by_type["message"] == messages


def test_export_in_small_batches_misses_and_repeats_nothing(api_client, user, monkeypatch):
    monkeypatch.setattr(portability, "ROWS_PER_QUERY", 3)
    for i in range(7):
        TaskFactory(owner=user, title=f"task {i}")
    long = ConversationFactory(owner=user, title="long")
    for i in range(8):
        say(long, f"line {i}", role="user")
    shorts = [ConversationFactory(owner=user, title=f"short {i}") for i in range(5)]
    for short in shorts[::2]:
        say(short, "hi", role="user")

    lines = exported(api_client)

    assert [line["title"] for line in lines if line["type"] == "task"] == [
        f"task {i}" for i in range(7)
    ]
    order = [(line["type"], line.get("title") or line.get("content")) for line in lines[8:]]
    expected = [("conversation", "long"), *[("message", f"line {i}") for i in range(8)]]
    for i, _ in enumerate(shorts):
        expected.append(("conversation", f"short {i}"))
        if i % 2 == 0:
            expected.append(("message", "hi"))
    assert order == expected


def test_export_query_count_does_not_grow_with_conversations(
    api_client, user, django_assert_max_num_queries
):
    for i in range(40):
        say(ConversationFactory(owner=user), f"message {i}", role="user")

    with django_assert_max_num_queries(6):
        lines = exported(api_client)

    assert len(lines) == 81


def test_export_needs_a_token(anon_client):
    assert anon_client.get(EXPORT).status_code == 401


def test_round_trip_into_a_fresh_account_gives_the_same_records(api_client, account):
    first = exported(api_client)
    fresh = client_for(UserFactory())

    response = post_import(fresh, first)

    assert response.status_code == 201
    assert response.json() == {"tasks": 2, "conversations": 3, "messages": 4}
    second = exported(fresh)

    def without_ids(lines):
        kept = []
        for line in lines[1:]:
            line = dict(line)
            line.pop("id")
            line.pop("conversation", None)
            kept.append(line)
        return kept

    assert without_ids(second) == without_ids(first)
    # Each message still follows its own conversation's line.
    conversation_ids = [line["id"] for line in second if line["type"] == "conversation"]
    assert [line["conversation"] for line in second if line["type"] == "message"] == [
        conversation_ids[0]
    ] * 3 + [conversation_ids[2]]


def test_import_adds_to_an_account_and_keeps_what_was_there(api_client, account, user):
    lines = exported(api_client)

    response = post_import(api_client, lines)

    assert response.status_code == 201
    assert Task.objects.filter(owner=user).count() == 4
    assert Conversation.objects.filter(owner=user).count() == 6
    groceries = Conversation.objects.filter(owner=user, title="Groceries").order_by("id")
    assert [c.message_count for c in groceries] == [3, 3]
    copy = groceries[1]
    assert list(copy.messages.order_by("seq").values_list("seq", flat=True)) == [1, 2, 3]


def test_imported_conversation_takes_new_messages_after_its_last_seq(api_client, account):
    post_import(api_client, exported(api_client))
    copy = Conversation.objects.filter(title="Groceries").order_by("-id").first()

    response = api_client.post(
        f"/api/v1/conversations/{copy.pk}/messages/", {"role": "user", "content": "more"}
    )

    assert response.json()["seq"] == 4


def good_body():
    return [
        {"type": "user", "id": 1, "username": "ada"},
        {
            "type": "task",
            "id": 5,
            "title": "Buy milk",
            "description": "",
            "completed": False,
            "created_at": "2026-01-01T10:00:00Z",
            "updated_at": "2026-01-01T10:00:00Z",
        },
        {
            "type": "conversation",
            "id": 7,
            "title": "Groceries",
            "archived": False,
            "pinned": False,
            "message_count": 1,
            "created_at": "2026-01-01T10:00:00Z",
            "updated_at": "2026-01-01T10:05:00Z",
        },
        {
            "type": "message",
            "id": 9,
            "conversation": 7,
            "seq": 1,
            "role": "user",
            "content": "add milk",
            "tool_calls": None,
            "client_id": None,
            "created_at": "2026-01-01T10:05:00Z",
        },
    ]


def with_line(index, change):
    """The good body with record `index` changed by `change` (a dict to merge, or a
    callable returning the record, or raw bytes), and a good message after it."""
    records = good_body()
    records.append({**records[3], "seq": 2, "content": "after"})
    lines = [orjson.dumps(record) for record in records]
    if isinstance(change, bytes):
        lines[index] = change
    else:
        lines[index] = orjson.dumps({**records[index], **change})
    return b"\n".join(lines) + b"\n"


BAD_LINES = {
    "invalid JSON": (3, b'{"type": "message", '),
    "not an object": (3, b"[1, 2]"),
    "unknown type": (2, {"type": "folder"}),
    "no type": (2, b'{"id": 1}'),
    "blank task title": (1, {"title": "   "}),
    "task title not a string": (1, {"title": 5}),
    "task completed not a boolean": (1, {"completed": "yes"}),
    "task timestamp missing": (1, {"created_at": None}),
    "conversation title too long": (2, {"title": "t" * 256}),
    "archived not a boolean": (2, {"archived": 1}),
    "conversation id not a number": (2, {"id": "7"}),
    "conversation timestamp not ISO": (2, {"updated_at": "yesterday"}),
    "conversation timestamp without zone": (2, {"created_at": "2026-01-01T10:00:00"}),
    "content too long": (3, {"content": "x" * 10_001}),
    "content empty": (3, {"content": ""}),
    "content with NUL": (3, {"content": "a\x00b"}),
    "role unknown": (3, {"role": "robot"}),
    "seq not from 1": (3, {"seq": 2}),
    "seq not a number": (3, {"seq": "1"}),
    "seq a boolean": (3, {"seq": True}),
    "conversation not in the body": (3, {"conversation": 8}),
    "tool_calls not an array": (3, {"tool_calls": {"name": "x"}}),
    "client_id not a UUID": (3, {"client_id": "abc"}),
    "message timestamp missing": (3, {"created_at": None}),
    "nested too deep": (3, b'{"type": "message", "tool_calls": ' + b"[" * 70 + b"]" * 70 + b"}"),
}


@pytest.mark.parametrize("kind", list(BAD_LINES))
def test_a_bad_line_is_400_naming_it_and_nothing_is_stored(api_client, user, kind):
    index, change = BAD_LINES[kind]

    response = post_import(api_client, with_line(index, change))

    assert response.status_code == 400, response.content
    assert response.json()["detail"].startswith(f"Line {index + 1}: ")
    assert not Task.objects.filter(owner=user).exists()
    assert not Conversation.objects.filter(owner=user).exists()
    assert not Message.objects.filter(owner=user).exists()


def test_the_good_body_itself_is_stored(api_client, user):
    response = post_import(api_client, with_line(0, {}))

    assert response.status_code == 201
    assert response.json() == {"tasks": 1, "conversations": 1, "messages": 2}
    conversation = Conversation.objects.get(owner=user)
    assert str(conversation.updated_at) == "2026-01-01 10:05:00+00:00"
    assert Task.objects.get(owner=user).created_at.isoformat() == "2026-01-01T10:00:00+00:00"


def test_a_bad_line_after_many_good_batches_stores_nothing(api_client, user, monkeypatch):
    monkeypatch.setattr(portability, "INSERTS_PER_QUERY", 2)
    records = good_body()
    records += [{**records[3], "seq": seq, "content": f"m{seq}"} for seq in range(2, 9)]
    records.append({**records[3], "seq": 20})

    response = post_import(api_client, records)

    assert response.status_code == 400
    assert response.json()["detail"].startswith(f"Line {len(records)}: seq must be 9")
    assert not Message.objects.filter(owner=user).exists()
    assert not Conversation.objects.filter(owner=user).exists()


def test_a_message_cannot_point_at_another_users_conversation(api_client, other_user):
    theirs = ConversationFactory(owner=other_user)
    records = good_body()
    records[3]["conversation"] = theirs.pk

    response = post_import(api_client, records)

    assert response.status_code == 400
    assert response.json()["detail"].startswith("Line 4: conversation")
    assert theirs.messages.count() == 0


def test_duplicate_client_id_in_a_conversation_is_400(api_client, user):
    records = good_body()
    client_id = str(uuid.uuid4())
    records[3]["client_id"] = client_id
    records.append({**records[3], "seq": 2})

    response = post_import(api_client, records)

    assert response.status_code == 400
    assert response.json()["detail"].startswith("Line 5: client_id")


@pytest.mark.parametrize("body", [b"", b"\n", b"  \n\n "])
def test_empty_body_is_400(api_client, body):
    response = post_import(api_client, body)

    assert response.status_code == 400
    assert "empty" in response.json()["detail"]


def test_blank_lines_are_skipped_but_counted(api_client, user):
    lines = [orjson.dumps(record) for record in good_body()]
    body = b"\n\n".join(lines[:3]) + b"\n\n" + b'{"type": "nope"}\n'

    response = post_import(api_client, body)

    assert response.json()["detail"].startswith("Line 7: ")


def test_over_the_limit_is_413_declared_or_not(api_client, user, settings):
    settings.MAX_IMPORT_BYTES = 500
    settings.REQUEST_BODY_LIMITS = {IMPORT: 500}
    body = b"".join(orjson.dumps(r) + b"\n" for r in good_body() * 3)
    assert len(body) > 500

    declared = post_import(api_client, body)
    settings.REQUEST_BODY_LIMITS = {IMPORT: 10_000}  # past the early check: the parser's
    read = post_import(api_client, body)

    assert (declared.status_code, read.status_code) == (413, 413)
    assert "detail" in declared.json() and "detail" in read.json()
    assert not Conversation.objects.filter(owner=user).exists()


def test_import_is_allowed_above_the_general_body_limit(api_client, user, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 200
    body = with_line(0, {})
    assert len(body) > 200

    assert post_import(api_client, body).status_code == 201
    assert api_client.post("/api/v1/tasks/", {"title": "x" * 190}).status_code == 413


def test_import_of_json_content_type_is_415(api_client):
    response = api_client.post(IMPORT, good_body(), format="json")

    assert response.status_code == 415


def test_import_needs_a_token(anon_client):
    response = anon_client.generic("POST", IMPORT, b'{"type": "user"}\n', content_type=NDJSON)

    assert response.status_code == 401


def test_import_query_count_does_not_grow_with_lines(
    api_client, user, django_assert_max_num_queries
):
    records = good_body()
    records += [{**records[3], "seq": seq, "content": f"m{seq}"} for seq in range(2, 301)]

    with django_assert_max_num_queries(12):
        response = post_import(api_client, records)

    assert response.json()["messages"] == 300
