"""Streaming chat turns: POST chat/ as Server-Sent Events, a turn's events replayed
and followed, a turn's status, and cancel (API.md, "Streaming a turn").

A streamed turn runs in a thread of the server process, so these tests commit
(`transaction=True`): the thread has its own database connection.
"""

import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from chat import events, streams
from chat.agents import AgentFailed, Step
from chat.models import ChatTurn, Message, TurnEvent
from conftest import client_for
from tasks.models import Task
from testing.factories import ConversationFactory, UserFactory
from testing.sse import parse

URL = "/api/v1/chat/"
STREAM = {"HTTP_ACCEPT": "text/event-stream"}

pytestmark = pytest.mark.django_db(transaction=True)


def turn_url(client_id, tail=""):
    return f"/api/v1/chat/turns/{client_id}/{tail}"


def body_of(response):
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/event-stream"
    return b"".join(response.streaming_content).decode()


def stream(client, message, **extra):
    """The events of a streamed POST chat/, read to the end."""
    return parse(body_of(client.post(URL, {"message": message, **extra}, **STREAM)))[0]


def replay(client, client_id, after=None, **headers):
    path = turn_url(client_id, "events/") + ("" if after is None else f"?after={after}")
    return parse(body_of(client.get(path, **headers)))[0]


def reply_of(stream_events):
    """The deltas after the last tool.result, concatenated."""
    last_result = max(
        (i for i, e in enumerate(stream_events) if e.name == "tool.result"), default=-1
    )
    return "".join(e.data["delta"] for e in stream_events[last_result + 1 :] if "delta" in e.data)


@pytest.fixture
def every_piece(monkeypatch):
    """One message.delta per piece the agent says (no coalescing)."""
    monkeypatch.setattr(events, "FLUSH_SECONDS", 0)


class SlowAgent:
    """Says "word0 word1 ..." a word every 20 ms, for about 4 s."""

    words = 200

    def next_step(self, *, history, tools, final, timeout, context, on_text=None):
        text = ""
        for i in range(self.words):
            time.sleep(0.02)
            piece = f"word{i} "
            text += piece
            on_text(piece)
        return Step(text=text)


class PausingAgent:
    """Thinks for half a second before it says anything."""

    def next_step(self, *, history, tools, final, timeout, context, on_text=None):
        time.sleep(0.5)
        on_text("Done.")
        return Step(text="Done.")


class SilentAgent:
    """Thinks for 5 s before it says anything, as a slow model may."""

    def next_step(self, *, history, tools, final, timeout, context, on_text=None):
        time.sleep(5)
        on_text("Too late.")
        return Step(text="Too late.")


class FlakyAgent:
    """Fails the first time it is asked in a process, then answers."""

    calls = 0

    def next_step(self, *, history, tools, final, timeout, context, on_text=None):
        FlakyAgent.calls += 1
        if FlakyAgent.calls == 1:
            raise AgentFailed("The model fell over.")
        on_text("Second ")
        on_text("time lucky.")
        return Step(text="Second time lucky.")


def wait_for(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_a_streamed_turn_sends_its_events_in_order_with_ids_from_1(api_client, every_piece):
    client_id = uuid.uuid4()

    got = stream(api_client, "add buy milk", client_id=str(client_id))

    names = [e.name for e in got]
    assert names[:3] == ["turn.started", "tool.call", "tool.result"]
    assert names[-1] == "turn.done"
    assert set(names[3:-1]) == {"message.delta"} and len(names[3:-1]) > 1
    assert [e.id for e in got] == list(range(1, len(got) + 1))
    started = got[0].data
    assert started["client_id"] == str(client_id)
    assert started["user_message"]["content"] == "add buy milk"
    assert started["conversation_id"] == got[-1].data["conversation_id"]
    assert got[1].data["message"]["tool_calls"][0]["name"] == "add_task"
    assert got[2].data["message"]["role"] == "tool"
    assert Task.objects.get().title == "buy milk"
    assert [e.name for e in TurnEvent.objects.order_by("seq")] == names


def test_the_deltas_concatenate_to_exactly_the_stored_reply(api_client, user, every_piece):
    Task.objects.create(owner=user, title="Call mom")
    Task.objects.create(owner=user, title="Buy milk")

    got = stream(api_client, "show my tasks")

    reply = Message.objects.filter(role="assistant", tool_calls__isnull=True).get()
    assert reply_of(got) == reply.content
    assert "\n" in reply.content  # a reply of several lines, sent in pieces
    assert got[-1].data["assistant_message"]["content"] == reply.content


def test_turn_done_equals_the_non_streaming_answer_of_a_retry(api_client):
    client_id = str(uuid.uuid4())
    done = stream(api_client, "add buy milk", client_id=client_id)[-1]

    retry = api_client.post(URL, {"message": "add buy milk", "client_id": client_id})

    assert retry.status_code == 200
    assert retry.json() == done.data
    assert done.data["status"] == "succeeded"
    assert Task.objects.count() == 1


def test_a_streaming_retry_of_a_finished_turn_answers_its_events_from_the_first(api_client):
    client_id = str(uuid.uuid4())
    first = stream(api_client, "add buy milk", client_id=client_id)

    again = stream(api_client, "add buy milk", client_id=client_id)

    assert again == first
    assert Task.objects.count() == 1 and Message.objects.count() == 4


def test_a_turn_without_client_id_gets_a_uuid_it_can_be_found_by(api_client):
    got = stream(api_client, "hello")

    client_id = uuid.UUID(got[0].data["client_id"])
    turn = api_client.get(turn_url(client_id)).json()
    assert turn["status"] == "succeeded"
    assert Message.objects.get(role="user").client_id is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"message": ""}, "message"),
        ({"message": "x" * 10_001}, "message"),
        ({"message": "nul \x00 here"}, "message"),
        ({"message": 5}, "message"),
        ({}, "message"),
        ({"message": "hi", "client_id": "not-a-uuid"}, "client_id"),
    ],
)
def test_a_bad_message_is_a_400_json_answer_not_a_stream_and_stores_nothing(
    api_client, body, field
):
    response = api_client.post(URL, body, format="json", **STREAM)

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert field in response.json() or "detail" in response.json()
    assert not Message.objects.exists() and not ChatTurn.objects.exists()


def test_refusals_before_the_turn_starts_are_json(api_client, other_user, anon_client):
    theirs = ConversationFactory(owner=other_user)
    client_id = str(uuid.uuid4())
    stream(api_client, "add buy milk", client_id=client_id)

    refused = {
        404: api_client.post(URL, {"message": "hi", "conversation_id": theirs.pk}, **STREAM),
        422: api_client.post(URL, {"message": "other", "client_id": client_id}, **STREAM),
        401: anon_client.post(URL, {"message": "hi"}, **STREAM),
    }

    for status, response in refused.items():
        assert response.status_code == status
        assert response["Content-Type"] == "application/json"
        assert "detail" in response.json()


def test_a_running_turn_is_409_json_to_a_streaming_retry(api_client, user):
    client_id = uuid.uuid4()
    stream(api_client, "add buy milk", client_id=str(client_id))
    ChatTurn.objects.update(status="running", lease_expires_at=timezone.now() + timedelta(60))

    response = api_client.post(
        URL, {"message": "add buy milk", "client_id": str(client_id)}, **STREAM
    )

    assert response.status_code == 409
    assert response["Content-Type"] == "application/json"


def test_another_users_turn_is_404_on_all_three_paths(api_client, other_client):
    client_id = str(uuid.uuid4())
    stream(api_client, "add buy milk", client_id=client_id)

    for method, path in [
        ("get", turn_url(client_id)),
        ("get", turn_url(client_id, "events/")),
        ("post", turn_url(client_id, "cancel/")),
    ]:
        response = getattr(other_client, method)(path, **STREAM)
        assert response.status_code == 404, path
        assert response["Content-Type"] == "application/json"
        assert set(response.json()) == {"detail"}
    assert ChatTurn.objects.get().cancel_requested_at is None


def test_a_finished_turn_replays_from_every_last_event_id(api_client, every_piece):
    client_id = str(uuid.uuid4())
    first = stream(api_client, "add buy milk", client_id=client_id)

    for last_seen in range(len(first) + 1):
        by_header = replay(api_client, client_id, HTTP_LAST_EVENT_ID=str(last_seen))
        by_query = replay(api_client, client_id, after=last_seen)
        assert by_header == by_query == first[last_seen:], last_seen
        if last_seen < len(first):
            assert reply_of(first[:last_seen] + by_header) == reply_of(first)


@pytest.mark.parametrize("bad", ["-1", "x", "1.5", str(2**31)])
def test_a_bad_last_event_id_is_400(api_client, bad):
    client_id = str(uuid.uuid4())
    stream(api_client, "hello", client_id=client_id)

    for response in (
        api_client.get(turn_url(client_id, "events/"), HTTP_LAST_EVENT_ID=bad),
        api_client.get(turn_url(client_id, "events/"), {"after": bad}),
    ):
        assert response.status_code == 400
        assert response["Content-Type"] == "application/json"


def test_the_turn_says_where_it_stands(api_client):
    client_id = str(uuid.uuid4())
    done = stream(api_client, "hello", client_id=client_id)[-1]

    turn = api_client.get(turn_url(client_id)).json()

    assert set(turn) == {"client_id", "conversation_id", "status", "created_at", "updated_at"}
    assert turn["client_id"] == client_id
    assert turn["conversation_id"] == done.data["conversation_id"]
    assert turn["status"] == "succeeded"
    assert turn["created_at"].endswith("Z")


def test_cancelling_a_finished_turn_changes_nothing(api_client):
    client_id = str(uuid.uuid4())
    first = stream(api_client, "add buy milk", client_id=client_id)

    response = api_client.post(turn_url(client_id, "cancel/"))

    assert response.status_code == 200
    assert response.json()["status"] == "succeeded"
    assert replay(api_client, client_id) == first
    assert ChatTurn.objects.get().cancel_requested_at is None


@pytest.fixture
def slow_agent(settings):
    settings.CHAT_AGENT = "chat.tests.test_chat_stream.SlowAgent"


def test_a_cancel_stops_a_running_turn_and_stores_the_reply_so_far(api_client, slow_agent):
    client_id = str(uuid.uuid4())
    response = api_client.post(URL, {"message": "talk", "client_id": client_id}, **STREAM)
    parts = iter(response.streaming_content)
    seen = ""
    while "message.delta" not in seen:
        seen += next(parts).decode()

    started = time.monotonic()
    cancel = api_client.post(turn_url(client_id, "cancel/"))
    rest = b"".join(parts).decode()
    stopped_after = time.monotonic() - started

    assert cancel.status_code == 200 and cancel.json()["status"] in ("running", "cancelled")
    got = parse(seen + rest)[0]
    assert got[-1].name == "turn.cancelled"
    assert stopped_after < 2
    outcome = got[-1].data
    assert outcome["status"] == "cancelled"
    reply = Message.objects.get(role="assistant")
    assert outcome["assistant_message"]["content"] == reply.content == reply_of(got)
    assert 0 < len(reply.content) < len(" ".join(f"word{i}" for i in range(SlowAgent.words)))
    assert api_client.get(turn_url(client_id)).json()["status"] == "cancelled"
    retry = api_client.post(URL, {"message": "talk", "client_id": client_id})
    assert retry.status_code == 200 and retry.json() == outcome


def test_a_cancel_stops_a_turn_whose_model_has_said_nothing_yet(api_client, settings):
    settings.CHAT_AGENT = "chat.tests.test_chat_stream.SilentAgent"
    client_id = str(uuid.uuid4())
    response = api_client.post(URL, {"message": "think", "client_id": client_id}, **STREAM)
    parts = iter(response.streaming_content)
    seen = next(parts).decode()
    assert "turn.started" in seen

    started = time.monotonic()
    api_client.post(turn_url(client_id, "cancel/"))
    rest = b"".join(parts).decode()
    stopped_after = time.monotonic() - started

    got = parse(seen + rest)[0]
    assert [e.name for e in got] == ["turn.started", "turn.cancelled"]
    assert stopped_after < 2
    assert got[-1].data["assistant_message"] is None
    assert api_client.get(turn_url(client_id)).json()["status"] == "cancelled"
    assert not Message.objects.filter(role="assistant").exists()


def test_a_client_that_disconnects_does_not_stop_its_turn(api_client, slow_agent, monkeypatch):
    monkeypatch.setattr(SlowAgent, "words", 30)
    client_id = str(uuid.uuid4())
    response = api_client.post(URL, {"message": "talk", "client_id": client_id}, **STREAM)
    next(iter(response.streaming_content))

    response.close()

    assert wait_for(lambda: ChatTurn.objects.get().status == "succeeded")
    reply = Message.objects.get(role="assistant").content
    assert reply == " ".join(f"word{i}" for i in range(30))
    assert reply_of(replay(api_client, client_id)) == reply


def test_a_follower_sees_a_running_turn_live_to_its_end(api_client, slow_agent, monkeypatch):
    monkeypatch.setattr(SlowAgent, "words", 30)
    client_id = str(uuid.uuid4())
    response = api_client.post(URL, {"message": "talk", "client_id": client_id}, **STREAM)
    first = next(iter(response.streaming_content)).decode()
    response.close()

    followed = replay(api_client, client_id, HTTP_LAST_EVENT_ID="1")

    assert parse(first)[0][0].name == "turn.started"
    assert followed[0].id == 2 and followed[-1].name == "turn.done"
    assert reply_of(followed) == Message.objects.get(role="assistant").content


def test_a_silent_turn_sends_keep_alive_comments(api_client, settings, monkeypatch):
    settings.CHAT_AGENT = "chat.tests.test_chat_stream.PausingAgent"
    monkeypatch.setattr(streams, "KEEPALIVE_SECONDS", 0.1)

    body = body_of(api_client.post(URL, {"message": "talk"}, **STREAM))

    events_, comments = parse(body)
    assert events_[-1].name == "turn.done"
    assert "keep-alive" in comments


def test_a_stream_of_a_silent_turn_sleeps_until_the_turn_writes(api_client, settings, monkeypatch):
    """Hundreds of open streams must cost nothing while they wait: a follower of a
    turn run in this process is woken by its writes, not by a short tick."""
    settings.CHAT_AGENT = "chat.tests.test_chat_stream.PausingAgent"
    checks = []
    needs_read = streams.Follower.needs_read
    monkeypatch.setattr(
        streams.Follower, "needs_read", lambda self: checks.append(1) or needs_read(self)
    )

    started = time.monotonic()
    body = body_of(api_client.post(URL, {"message": "talk"}, **STREAM))

    assert parse(body)[0][-1].name == "turn.done"
    assert time.monotonic() - started >= 0.5  # the agent's pause
    assert len(checks) <= 12  # a 20 ms tick would have checked 25 times in the pause


def test_a_stream_ends_with_its_turns_lease(api_client, user):
    client_id = str(uuid.uuid4())
    stream(api_client, "hello", client_id=client_id)
    turn = ChatTurn.objects.get()
    TurnEvent.objects.filter(seq__gt=1).delete()  # as if its process died after starting
    turn.status = "running"
    turn.lease_expires_at = timezone.now() + timedelta(seconds=1)
    turn.save()

    started = time.monotonic()
    got = replay(api_client, client_id)

    assert [e.name for e in got] == ["turn.started"]
    assert 0.5 < time.monotonic() - started < 3
    assert api_client.get(turn_url(client_id)).json()["status"] == "failed"
    cancelled = api_client.post(turn_url(client_id, "cancel/")).json()
    assert cancelled["status"] == "cancelled"
    assert [e.name for e in replay(api_client, client_id)] == ["turn.started", "turn.cancelled"]


def test_a_failed_turn_ends_its_stream_with_turn_failed_and_a_retry_starts_again(
    api_client, settings
):
    settings.CHAT_AGENT = "chat.tests.test_chat_stream.FlakyAgent"
    FlakyAgent.calls = 0
    client_id = str(uuid.uuid4())

    failed = stream(api_client, "hello", client_id=client_id)
    retried = stream(api_client, "hello", client_id=client_id)

    assert [e.name for e in failed] == ["turn.started", "turn.failed"]
    assert failed[-1].data == {"status": 502, "detail": "The model fell over."}
    assert [e.id for e in retried] == list(range(1, len(retried) + 1))
    assert retried[0].data == failed[0].data
    assert retried[-1].name == "turn.done"
    assert reply_of(retried) == "Second time lucky."
    assert replay(api_client, client_id) == retried
    assert Message.objects.filter(role="user").count() == 1


def test_events_follow_the_conversation_to_a_new_owner_and_go_with_it(api_client, user):
    stream(api_client, "add buy milk")
    conversation = ChatTurn.objects.get().conversation
    newcomer = UserFactory()
    from chat.services import conversation_delete, conversation_transfer

    conversation_transfer(conversation=conversation, new_owner=newcomer)

    assert set(TurnEvent.objects.values_list("owner_id", flat=True)) == {newcomer.pk}
    client_id = ChatTurn.objects.get().client_id
    assert client_for(newcomer).get(turn_url(client_id)).status_code == 200
    assert api_client.get(turn_url(client_id)).status_code == 404
    conversation_delete(conversation=conversation)
    assert not TurnEvent.objects.exists()


def test_many_streams_at_once_each_get_their_own_turn(user):
    results = {}

    def one(i):
        results[i] = stream(client_for(user), f"add buy milk {i}")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(results) == [0, 1, 2, 3]
    assert {e[-1].name for e in results.values()} == {"turn.done"}
    assert Task.objects.count() == 4
    for i, got in results.items():
        assert got[-1].data["tool_calls"][0]["arguments"]["title"].endswith(str(i))
