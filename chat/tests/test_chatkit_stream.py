"""ChatKit streams live and cancels: `respond` runs `POST chat/`'s streamed turn and a
front end that drops the stream (ChatKit's cancel) cancels the turn, which ends
`cancelled` with the reply so far stored. Under WSGI (the test client: the response
closed, as gunicorn closes it when the client is gone) and under ASGI (the project's
ASGI application, driven by hand: `http.disconnect`, and Django cancels the task
that streams). Every event is checked with the SDK's own `ThreadStreamEvent`.

The turn runs in a thread of the server, so these tests commit (`transaction=True`).
"""

import asyncio
import json
import time

import pytest
from chatkit.types import AssistantMessageItem, Page, ThreadItem, ThreadStreamEvent
from pydantic import TypeAdapter
from rest_framework_simplejwt.tokens import AccessToken

from chat.models import ChatTurn, Message
from chat.tests.test_chat_stream import SlowAgent
from chat.tests.test_chatkit import post, user_input

EVENT = TypeAdapter(ThreadStreamEvent)
ITEM_PAGE = TypeAdapter(Page[ThreadItem])
FULL_REPLY = " ".join(f"word{i}" for i in range(SlowAgent.words))
CREATE = {"type": "threads.create", "params": {"input": user_input("talk")}}

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def slow_agent(settings):
    settings.CHAT_AGENT = "chat.tests.test_chat_stream.SlowAgent"


def events_of(raw: bytes):
    """The complete SSE frames of `raw`, each validated as the SDK's ThreadStreamEvent."""
    frames = raw.decode().split("\n\n")[:-1]
    assert all(frame.startswith("data: ") for frame in frames)
    return [EVENT.validate_json(frame[len("data: ") :]) for frame in frames]


def text_deltas(events):
    return [
        event.update.delta
        for event in events
        if event.type == "thread.item.updated"
        and event.update.type == "assistant_message.content_part.text_delta"
    ]


def wait_for(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def assert_cancelled_with_the_reply_so_far(api_client, seen):
    """The turn ends cancelled; the reply stored is what the model had said, of which
    the stream showed the beginning; ChatKit's items end with it."""
    assert wait_for(lambda: ChatTurn.objects.get().status == ChatTurn.Status.CANCELLED)
    reply = Message.objects.get(role="assistant")
    assert 0 < len(reply.content) < len(FULL_REPLY)
    assert FULL_REPLY.startswith(reply.content)
    assert reply.content.startswith("".join(text_deltas(seen)))
    thread_id = next(e.thread.id for e in seen if e.type == "thread.created")
    page = ITEM_PAGE.validate_json(
        post(api_client, {"type": "items.list", "params": {"thread_id": thread_id}}).content
    )
    assert isinstance(page.data[0], AssistantMessageItem)
    assert page.data[0].content[0].text == reply.content
    status = api_client.get(f"/api/v1/chat/turns/{ChatTurn.objects.get().client_id}/").json()
    assert status["status"] == "cancelled"


def test_the_reply_streams_while_the_turn_runs(api_client):
    response = post(api_client, CREATE)
    assert response["Content-Type"] == "text/event-stream"
    raw = b""
    for chunk in response.streaming_content:
        raw += chunk
        if text_deltas(events_of(raw)):
            break

    # A delta arrived while the turn was still running, before its reply was stored.
    assert ChatTurn.objects.get().status == ChatTurn.Status.RUNNING
    assert not Message.objects.filter(role="assistant").exists()
    raw += b"".join(response.streaming_content)
    events = events_of(raw)
    assert events[-1].type == "thread.item.done"
    reply = Message.objects.get(role="assistant")
    assert "".join(text_deltas(events)) == reply.content == FULL_REPLY
    assert events[-1].item.content[0].text == reply.content
    options = next(e for e in events if e.type == "stream_options")
    assert options.stream_options.allow_cancel is True
    assert ChatTurn.objects.get().status == ChatTurn.Status.SUCCEEDED


def test_dropping_the_stream_under_wsgi_cancels_the_turn(api_client):
    response = post(api_client, CREATE)
    raw = b""
    parts = iter(response.streaming_content)
    while len(text_deltas(events_of(raw))) < 3:
        raw += next(parts)

    response.close()

    assert_cancelled_with_the_reply_so_far(api_client, events_of(raw))


async def stream_over_asgi(token, body, *, until):
    """POST `body` to the ChatKit endpoint through the project's ASGI application;
    once `until(raw body so far)` holds, the client disconnects. Returns
    (status, raw body)."""
    from chatproject.asgi import application

    gone = asyncio.Event()
    requested = False
    status, raw = {}, []

    async def receive():
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.start":
            status["code"] = message["status"]
        elif message["type"] == "http.response.body":
            raw.append(message.get("body", b""))
            if until(b"".join(raw)):
                gone.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/chatkit/",
        "raw_path": b"/api/v1/chatkit/",
        "query_string": b"",
        "headers": [
            (b"host", b"testserver"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", b"application/json"),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
    }
    await asyncio.wait_for(application(scope, receive, send), timeout=30)
    return status["code"], b"".join(raw)


def test_dropping_the_stream_under_asgi_cancels_the_turn(api_client, user):
    started = time.monotonic()
    status, raw = asyncio.run(
        stream_over_asgi(
            AccessToken.for_user(user),
            json.dumps(CREATE).encode(),
            until=lambda raw: len(text_deltas(events_of(raw))) >= 3,
        )
    )

    assert status == 200
    # Streamed live: the client left long before the whole reply (about 4 s) was said.
    assert time.monotonic() - started < 3
    assert_cancelled_with_the_reply_so_far(api_client, events_of(raw))


def test_a_turn_that_fails_ends_the_stream_with_an_error_event(api_client, settings):
    from chat.tests.test_chat_stream import FlakyAgent

    settings.CHAT_AGENT = "chat.tests.test_chat_stream.FlakyAgent"
    FlakyAgent.calls = 0

    events = events_of(b"".join(post(api_client, CREATE).streaming_content))

    errors = [e for e in events if e.type == "error"]
    assert len(errors) == 1 and errors[0].allow_retry is True
    assert "fell over" in errors[0].message
    assert ChatTurn.objects.get().status == ChatTurn.Status.FAILED
    assert [e.item.type for e in events if e.type == "thread.item.done"] == ["user_message"]
