"""POST /api/v1/chatkit/: the ChatKit protocol on our conversations, checked through the
SDK's own types (every streamed event a `ThreadStreamEvent`, every JSON answer its
type), with the offline rules agent."""

import json
import uuid
from datetime import timedelta

import pytest
from chatkit.types import (
    AssistantMessageItem,
    Page,
    Thread,
    ThreadItem,
    ThreadStreamEvent,
    UserMessageItem,
    WorkflowItem,
)
from django.test import Client
from django.utils import timezone
from pydantic import TypeAdapter

from chat.models import Conversation, Message, MessageFeedback
from conftest import client_for
from tasks.models import Task
from testing.api import assert_json_error
from testing.factories import ConversationFactory, UserFactory, add_messages

URL = "/api/v1/chatkit/"
EVENT = TypeAdapter(ThreadStreamEvent)
THREAD = TypeAdapter(Thread)
THREAD_PAGE = TypeAdapter(Page[Thread])
ITEM_PAGE = TypeAdapter(Page[ThreadItem])

pytestmark = pytest.mark.django_db(transaction=True)


def post(client, body):
    raw = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.generic("POST", URL, raw, content_type="application/json")


def stream(client, body):
    """The events of a streaming answer, each validated as the SDK's ThreadStreamEvent."""
    response = post(client, body)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/event-stream"
    raw = b"".join(response.streaming_content).decode()
    frames = [frame for frame in raw.split("\n\n") if frame]
    assert frames and all(frame.startswith("data: ") for frame in frames)
    return [EVENT.validate_json(frame[len("data: ") :]) for frame in frames]


def answer(client, body, adapter):
    response = post(client, body)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    return adapter.validate_json(response.content)


def user_input(text):
    return {
        "content": [{"type": "input_text", "text": text}],
        "attachments": [],
        "inference_options": {},
    }


def create(client, text):
    events = stream(client, {"type": "threads.create", "params": {"input": user_input(text)}})
    assert events[0].type == "thread.created"
    return events[0].thread.id, events


def add(client, thread_id, text):
    return stream(
        client,
        {
            "type": "threads.add_user_message",
            "params": {"thread_id": thread_id, "input": user_input(text)},
        },
    )


def items(client, thread_id, **params):
    return answer(
        client, {"type": "items.list", "params": {"thread_id": thread_id, **params}}, ITEM_PAGE
    )


def threads(client, **params):
    return answer(client, {"type": "threads.list", "params": params}, THREAD_PAGE)


def rest_messages(client, thread_id):
    response = client.get(f"/api/v1/conversations/{thread_id}/messages/?page_size=1000")
    assert response.status_code == 200, response.content
    return response.json()["results"]


def test_threads_create_runs_a_turn_and_streams_its_items(api_client, user):
    thread_id, events = create(api_client, "add buy milk")

    task = Task.objects.get()
    assert (task.owner, task.title) == (user, "buy milk")
    conversation = Conversation.objects.get(pk=int(thread_id))
    assert conversation.owner == user
    assert conversation.title == "add buy milk"
    kinds = [event.type for event in events]
    assert kinds[:2] == ["thread.created", "thread.item.done"]
    assert "progress_update" in kinds and "thread.updated" in kinds
    done = [event.item for event in events if event.type == "thread.item.done"]
    assert [type(item) for item in done] == [UserMessageItem, WorkflowItem, AssistantMessageItem]
    assert done[1].workflow.tasks[0].title == "add_task"
    assert done[1].workflow.tasks[0].status_indicator == "complete"
    deltas = [
        event.update.delta
        for event in events
        if event.type == "thread.item.updated"
        and event.update.type == "assistant_message.content_part.text_delta"
    ]
    assert "".join(deltas) == f"Added “buy milk” to your list (task #{task.id})."
    # The items are the stored messages, under their stable ids; the reply, streamed
    # before it was stored, under its message's client id (the store resolves both).
    stored = rest_messages(api_client, thread_id)
    assert [m["role"] for m in stored] == ["user", "assistant", "tool", "assistant"]
    assert [item.id for item in done[:2]] == [f"msg_{stored[i]['id']}" for i in (0, 1)]
    assert done[2].id == f"msg_s{uuid.UUID(stored[3]['client_id']).hex}"
    assert done[2].content[0].text == stored[3]["content"]
    loaded = answer(
        api_client,
        {
            "type": "items.list",
            "params": {"thread_id": thread_id, "after": done[1].id, "order": "asc"},
        },
        ITEM_PAGE,
    )
    assert [item.id for item in loaded.data] == [f"msg_{stored[3]['id']}"]


def test_add_user_message_continues_the_thread_and_items_list_shows_it(api_client):
    thread_id, _ = create(api_client, "add buy milk")

    events = add(api_client, thread_id, "list my tasks")

    assert events[0].type == "thread.item.done"
    assert isinstance(events[0].item, UserMessageItem)
    page = items(api_client, thread_id, order="asc", limit=100)
    assert page.has_more is False
    assert [type(item).__name__ for item in page.data] == [
        "UserMessageItem",
        "WorkflowItem",
        "AssistantMessageItem",
        "UserMessageItem",
        "WorkflowItem",
        "AssistantMessageItem",
    ]
    stored = rest_messages(api_client, thread_id)
    shown = [m for m in stored if m["role"] != "tool"]
    assert [item.id for item in page.data] == [f"msg_{m['id']}" for m in shown]
    assert page.data[3].content[0].text == "list my tasks"


def test_a_conversation_made_through_chat_is_a_thread(api_client):
    made = api_client.post("/api/v1/chat/", {"message": "add buy bread"}, format="json").json()
    thread_id = str(made["conversation_id"])

    thread = answer(
        api_client, {"type": "threads.get_by_id", "params": {"thread_id": thread_id}}, THREAD
    )

    assert thread.id == thread_id
    assert thread.title == "add buy bread"
    assert [item.id for item in thread.items.data] == [
        f"msg_{made['user_message']['id']}",
        f"msg_{made['user_message']['id'] + 1}",
        f"msg_{made['assistant_message']['id']}",
    ]
    assert thread.items.data[-1].content[0].text == made["assistant_message"]["content"]
    assert thread_id in [t.id for t in threads(api_client).data]


def test_threads_list_follows_after_limit_and_order(api_client, user, django_assert_num_queries):
    start = timezone.now()
    made = [
        ConversationFactory(owner=user, updated_at=start + timedelta(minutes=i)) for i in range(5)
    ]
    ConversationFactory()  # someone else's
    newest_first = [str(c.pk) for c in reversed(made)]

    with django_assert_num_queries(3):  # the user, the throttle's block claim, the page
        first = threads(api_client, limit=2)
    with django_assert_num_queries(3):  # the user, the cursor, the page (the block covers it)
        second = threads(api_client, limit=2, after=first.after)
    third = threads(api_client, limit=2, after=second.after)

    assert [t.id for t in first.data + second.data + third.data] == newest_first
    assert (first.has_more, second.has_more, third.has_more) == (True, True, False)
    ascending = threads(api_client, order="asc", limit=3)
    assert [t.id for t in ascending.data] == newest_first[::-1][:3]
    rest = api_client.get("/api/v1/conversations/").json()["results"]
    assert [str(c["id"]) for c in rest] == newest_first


def test_items_list_follows_after_limit_and_order(api_client, user, django_assert_num_queries):
    conversation = ConversationFactory(owner=user)
    messages = add_messages(conversation, 7)
    add_messages(conversation, 1, role="system")  # not an item
    ids = [f"msg_{m.pk}" for m in messages]

    # The page's rows say whose thread it is, as for the REST message page.
    with django_assert_num_queries(3):  # the user, the block claim, the page
        first = items(api_client, str(conversation.pk), order="asc", limit=3)
    with django_assert_num_queries(3):  # the claim's place taken by the cursor
        second = items(api_client, str(conversation.pk), order="asc", limit=3, after=first.after)
    third = items(api_client, str(conversation.pk), order="asc", limit=3, after=second.after)
    newest = items(api_client, str(conversation.pk), order="desc", limit=2)

    assert [i.id for i in first.data + second.data + third.data] == ids
    assert (first.has_more, second.has_more, third.has_more) == (True, True, False)
    assert [i.id for i in newest.data] == ids[::-1][:2]


def test_threads_update_stores_the_title_and_delete_deletes_the_conversation(api_client):
    thread_id, _ = create(api_client, "hello")

    updated = answer(
        api_client,
        {"type": "threads.update", "params": {"thread_id": thread_id, "title": "Greetings"}},
        THREAD,
    )
    assert updated.title == "Greetings"
    assert api_client.get(f"/api/v1/conversations/{thread_id}/").json()["title"] == "Greetings"

    response = post(api_client, {"type": "threads.delete", "params": {"thread_id": thread_id}})
    assert response.status_code == 200 and response.json() == {}
    assert not Conversation.objects.filter(pk=int(thread_id)).exists()
    assert not Message.objects.exists()


def test_retry_after_item_answers_again_and_keeps_the_rest_log(api_client):
    thread_id, created = create(api_client, "add buy milk")
    old_user_item = created[1].item.id

    events = stream(
        api_client,
        {
            "type": "threads.retry_after_item",
            "params": {"thread_id": thread_id, "item_id": old_user_item},
        },
    )

    assert {"type": "thread.item.removed", "item_id": old_user_item} in [
        e.model_dump(include={"type", "item_id"}) for e in events
    ]
    page = items(api_client, thread_id, order="asc", limit=50)
    assert [type(i).__name__ for i in page.data] == [
        "UserMessageItem",
        "WorkflowItem",
        "AssistantMessageItem",
    ]
    assert old_user_item not in [i.id for i in page.data]
    assert page.data[0].content[0].text == "add buy milk"
    # The REST log keeps all eight messages, gap-free, the first turn's marked superseded.
    log = rest_messages(api_client, thread_id)
    assert [m["seq"] for m in log] == list(range(1, 9))
    assert [m["superseded_at"] is not None for m in log] == [True] * 4 + [False] * 4
    assert Task.objects.count() == 2  # the retry answered again


def test_retried_messages_leave_the_agents_history(api_client):
    from chat.turns import TurnState, _load

    thread_id, created = create(api_client, "add buy milk")
    stream(
        api_client,
        {
            "type": "threads.retry_after_item",
            "params": {"thread_id": thread_id, "item_id": created[1].item.id},
        },
    )
    turn = Conversation.objects.get(pk=int(thread_id)).turns.order_by("-id").first()

    state = _load(turn)

    assert isinstance(state, TurnState)
    assert [m.seq for m in state.history] == [5]


def test_feedback_is_stored_replaced_and_shown_in_the_admin(api_client, user):
    thread_id, events = create(api_client, "hello")
    reply = [e.item for e in events if e.type == "thread.item.done"][-1]

    for kind in ("positive", "negative"):
        response = post(
            api_client,
            {
                "type": "items.feedback",
                "params": {"thread_id": thread_id, "item_ids": [reply.id], "kind": kind},
            },
        )
        assert response.status_code == 200 and response.json() == {}

    feedback = MessageFeedback.objects.get()
    # The reply as streamed, under its message's client id: the stored reply.
    assert reply.id == f"msg_s{feedback.message.client_id.hex}"
    assert (feedback.kind, feedback.owner, feedback.message.role) == ("down", user, "assistant")
    staff = Client()
    staff.force_login(UserFactory(is_staff=True, is_superuser=True))
    page = staff.get("/admin/chat/messagefeedback/")
    assert page.status_code == 200
    content = page.content.decode()
    assert f"{feedback.message.role} #{feedback.message.seq}" in content
    assert ">Down<" in content


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("not json", "JSON"),
        ('{"type": "threads.explode", "params": {}}', "threads.explode"),
        ('{"type": "threads.list"}', "params"),
        ("[]", "ChatKit"),
    ],
)
def test_a_body_that_is_not_a_chatkit_request_is_400(api_client, body, words):
    response = post(api_client, body)

    assert_json_error(response, 400)
    assert words in response.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {"type": "attachments.create", "params": {"name": "a.png", "size": 1, "mime_type": "x"}},
        {"type": "attachments.delete", "params": {"attachment_id": "atc_1"}},
        {"type": "input.transcribe", "params": {"audio_base64": "", "mime_type": "audio/webm"}},
        {
            "type": "threads.create",
            "params": {"input": {**user_input("hi"), "attachments": ["atc_1"]}},
        },
    ],
)
def test_attachments_and_transcription_are_not_supported(api_client, body):
    response = post(api_client, body)

    assert_json_error(response, 400)
    assert "not supported" in response.json()["detail"]
    assert not Conversation.objects.exists()


def test_an_empty_message_is_400_and_stores_nothing(api_client):
    response = post(api_client, {"type": "threads.create", "params": {"input": user_input("")}})

    assert_json_error(response, 400)
    assert not Conversation.objects.exists()


def test_without_a_token_it_is_401(anon_client):
    assert_json_error(post(anon_client, {"type": "threads.list", "params": {}}), 401)


def victim_state():
    return (
        list(Conversation.objects.values_list("id", "title", "message_count", "updated_at")),
        list(Message.objects.values_list("id", "seq", "content", "superseded_at")),
        MessageFeedback.objects.count(),
        Task.objects.count(),
    )


def test_another_users_threads_and_items_are_404_and_unchanged(api_client):
    victim = client_for(UserFactory())
    thread_id, events = create(victim, "add buy milk")
    done = [e.item for e in events if e.type == "thread.item.done"]
    user_item, reply = done[0].id, done[-1].id
    mine, _ = create(api_client, "hello")
    before = victim_state()
    requests = [
        {"type": "threads.get_by_id", "params": {"thread_id": thread_id}},
        {"type": "threads.update", "params": {"thread_id": thread_id, "title": "x"}},
        {"type": "threads.delete", "params": {"thread_id": thread_id}},
        {"type": "items.list", "params": {"thread_id": thread_id}},
        {"type": "items.list", "params": {"thread_id": mine, "after": reply}},
        {
            "type": "threads.add_user_message",
            "params": {"thread_id": thread_id, "input": user_input("add spy")},
        },
        {
            "type": "threads.retry_after_item",
            "params": {"thread_id": thread_id, "item_id": user_item},
        },
        {"type": "threads.retry_after_item", "params": {"thread_id": mine, "item_id": user_item}},
        {
            "type": "items.feedback",
            "params": {"thread_id": thread_id, "item_ids": [reply], "kind": "negative"},
        },
        {
            "type": "items.feedback",
            "params": {"thread_id": mine, "item_ids": [reply], "kind": "negative"},
        },
        {"type": "threads.list", "params": {"after": thread_id}},
    ]
    mine_before = rest_messages(api_client, mine)

    for body in requests:
        assert_json_error(post(api_client, body), 404)

    assert victim_state() == before
    assert thread_id not in [t.id for t in threads(api_client).data]
    assert rest_messages(api_client, mine) == mine_before


@pytest.mark.parametrize(
    "body",
    [
        {"type": "threads.get_by_id", "params": {"thread_id": "999999"}},
        {"type": "threads.get_by_id", "params": {"thread_id": "not-a-number"}},
        {"type": "items.list", "params": {"thread_id": "99999999999999999999999"}},
        {"type": "threads.delete", "params": {"thread_id": "-1"}},
    ],
)
def test_a_missing_thread_is_404(api_client, body):
    assert_json_error(post(api_client, body), 404)


def test_feedback_owner_follows_its_conversation(api_client, user):
    from django.db import IntegrityError, connection, transaction

    from chat import services

    thread_id, events = create(api_client, "hello")
    reply = [e.item for e in events if e.type == "thread.item.done"][-1]
    post(
        api_client,
        {
            "type": "items.feedback",
            "params": {"thread_id": thread_id, "item_ids": [reply.id], "kind": "positive"},
        },
    )
    new_owner = UserFactory()

    services.conversation_transfer(
        conversation=Conversation.objects.get(pk=int(thread_id)), new_owner=new_owner
    )

    assert MessageFeedback.objects.get().owner == new_owner
    with pytest.raises(IntegrityError), transaction.atomic():
        MessageFeedback.objects.update(owner=user)
        connection.check_constraints()


@pytest.mark.parametrize("delete", ["account", "thread"])
def test_deleting_the_account_or_thread_deletes_its_feedback(api_client, delete):
    from django.db import connection

    thread_id, events = create(api_client, "hello")
    reply = [e.item for e in events if e.type == "thread.item.done"][-1]
    post(
        api_client,
        {
            "type": "items.feedback",
            "params": {"thread_id": thread_id, "item_ids": [reply.id], "kind": "positive"},
        },
    )

    if delete == "account":
        assert api_client.delete("/api/v1/auth/me/").status_code == 204
    else:
        post(api_client, {"type": "threads.delete", "params": {"thread_id": thread_id}})

    assert not MessageFeedback.objects.exists()
    assert not Message.objects.exists()
    connection.check_constraints()


def test_a_locked_threads_status_is_stored_shown_and_refuses_messages(api_client, user):
    from chatkit.types import LockedStatus

    from chat.chatkit_server import server
    from chat.chatkit_store import ChatKitContext
    from chat.views import drive

    thread_id, _ = create(api_client, "hello")
    context = ChatKitContext(user=user)
    thread = drive(server.store.load_thread(thread_id, context))
    assert thread.status.type == "active"
    thread.status = LockedStatus(reason="Under review.")

    drive(server.store.save_thread(thread, context))

    conversation = Conversation.objects.get(pk=int(thread_id))
    assert (conversation.thread_status, conversation.thread_status_reason) == (
        "locked",
        "Under review.",
    )
    shown = answer(
        api_client, {"type": "threads.get_by_id", "params": {"thread_id": thread_id}}, THREAD
    )
    assert shown.status == LockedStatus(reason="Under review.")
    assert threads(api_client).data[0].status == LockedStatus(reason="Under review.")
    count = Message.objects.count()
    refused = post(
        api_client,
        {
            "type": "threads.add_user_message",
            "params": {"thread_id": thread_id, "input": user_input("anyone?")},
        },
    )
    assert_json_error(refused, 409)
    assert "locked: Under review." in refused.json()["detail"]
    assert Message.objects.count() == count
    # A title change keeps the status; the REST API does not show it.
    answer(
        api_client,
        {"type": "threads.update", "params": {"thread_id": thread_id, "title": "Renamed"}},
        THREAD,
    )
    assert Conversation.objects.get(pk=int(thread_id)).thread_status == "locked"
    assert "thread_status" not in api_client.get(f"/api/v1/conversations/{thread_id}/").json()


@pytest.mark.parametrize(
    ("status", "reason"), [(None, "a reason without a status"), ("open", None), ("", None)]
)
def test_the_database_refuses_a_bad_thread_status(user, status, reason):
    from django.db import IntegrityError, transaction

    conversation = ConversationFactory(owner=user)

    with pytest.raises(IntegrityError), transaction.atomic():
        Conversation.objects.filter(pk=conversation.pk).update(
            thread_status=status, thread_status_reason=reason
        )


def test_an_operator_closes_a_thread_in_the_admin(api_client, user):
    thread_id, _ = create(api_client, "hello")
    staff = Client()
    staff.force_login(UserFactory(is_staff=True, is_superuser=True))
    url = f"/admin/chat/conversation/{thread_id}/change/"

    bad = staff.post(url, {"title": "hello", "thread_status_reason": "no status"})
    closed = staff.post(url, {"title": "hello", "thread_status": "closed"})

    assert bad.status_code == 200  # the form again, with the constraint's error
    assert closed.status_code == 302
    shown = answer(
        api_client, {"type": "threads.get_by_id", "params": {"thread_id": thread_id}}, THREAD
    )
    assert shown.status.type == "closed" and shown.status.reason is None


def sdk_answer(user, body):
    """What the SDK itself answers (its parsing, our store, its models)."""
    from chat.chatkit_server import server
    from chat.chatkit_store import ChatKitContext
    from chat.views import drive

    return drive(server.process(json.dumps(body), ChatKitContext(user=user))).json


def test_read_answers_are_the_sdks_own(api_client, user):
    from chatkit.store import NotFoundError
    from chatkit.types import ClosedStatus

    from chat import chatkit_reads, services

    first, _ = create(api_client, "add buy milk")
    add(api_client, first, "complete buy milk")
    add(api_client, first, "list my tasks")
    second, created = create(api_client, "add call mom")
    stream(
        api_client,
        {
            "type": "threads.retry_after_item",
            "params": {"thread_id": second, "item_id": created[1].item.id},
        },
    )
    untitled = ConversationFactory(owner=user, title="")
    add_messages(untitled, 3)
    empty = ConversationFactory(owner=user, title="Nothing yet")
    services.conversation_set_thread_status(
        conversation=empty, status="closed", reason="Moved elsewhere."
    )
    ConversationFactory(owner=user, title="Locked").__class__.objects.filter(title="Locked").update(
        thread_status="locked"
    )
    page = items(api_client, first, order="asc", limit=100)
    cursors = [page.data[i].id for i in (0, 2, 4)] + [
        e.item.id for e in add(api_client, first, "hello") if e.type == "thread.item.done"
    ]
    bodies = [
        {"type": "threads.list", "params": {}},
        {"type": "threads.list", "params": {"limit": 2, "order": "asc"}},
        {"type": "threads.list", "params": {"limit": 0, "after": first}},
        {"type": "threads.list", "params": {"limit": 500, "after": second, "order": "asc"}},
        {"type": "threads.get_by_id", "params": {"thread_id": first}},
        {"type": "threads.get_by_id", "params": {"thread_id": second}},
        {"type": "threads.get_by_id", "params": {"thread_id": str(untitled.pk)}},
        {"type": "threads.get_by_id", "params": {"thread_id": str(empty.pk)}},
        {"type": "items.list", "params": {"thread_id": str(empty.pk)}},
        {"type": "items.list", "params": {"thread_id": second, "order": "asc"}},
        *(
            {"type": "items.list", "params": {"thread_id": first, **extra}}
            for extra in (
                {},
                {"limit": 2},
                {"limit": 3, "order": "asc"},
                {"limit": 5000, "order": "desc"},
                *({"after": cursor, "limit": 2} for cursor in cursors),
                *({"after": cursor, "order": "asc"} for cursor in cursors),
            )
        ),
    ]

    for body in bodies:
        fast = chatkit_reads.answer(json.dumps(body).encode(), user)

        assert fast is not None, body
        assert json.loads(fast) == json.loads(sdk_answer(user, body)), body
        adapter = THREAD if body["type"] == "threads.get_by_id" else None
        adapter = adapter or (THREAD_PAGE if body["type"] == "threads.list" else ITEM_PAGE)
        adapter.validate_json(fast)
    statuses = {t.id: t.status for t in threads(api_client, limit=100).data}
    assert statuses[str(empty.pk)] == ClosedStatus(reason="Moved elsewhere.")
    for body in (
        {"type": "items.list", "params": {"thread_id": first, "after": "msg_999999"}},
        {"type": "threads.list", "params": {"after": "999999"}},
        {"type": "items.list", "params": {"thread_id": str(ConversationFactory().pk)}},
    ):
        with pytest.raises(NotFoundError):
            chatkit_reads.answer(json.dumps(body).encode(), user)
        with pytest.raises(NotFoundError):
            sdk_answer(user, body)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"type": "threads.list", "params": {"limit": "5"}}',
        b'{"type": "threads.list", "params": {"order": "sideways"}}',
        b'{"type": "items.list", "params": {"thread_id": 5}}',
        b'{"type": "items.list", "params": {"thread_id": "1", "colour": "red"}}',
        b'{"type": "threads.list", "params": {}, "extra": 1}',
        b'{"type": "threads.delete", "params": {"thread_id": "1"}}',
    ],
)
def test_a_read_of_another_shape_is_left_to_the_sdk(user, body):
    from chat import chatkit_reads

    assert chatkit_reads.answer(body, user) is None
