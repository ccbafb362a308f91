"""Retry-safe chat turns: a client_id never runs a turn twice, and a retry after a
failure continues from the stored tool results without repeating a tool call."""

import uuid
from datetime import timedelta

import pytest
from django.db import OperationalError, transaction
from django.utils import timezone

from chat import turns
from chat.agents import AgentFailed, Step, ToolCall
from chat.agents.base import requested_calls
from chat.agents.rules import RulesAgent
from chat.models import ChatTurn, Message
from conftest import client_for
from tasks import tools
from tasks.models import Task
from testing.concurrency import run_at_once
from testing.factories import TaskFactory

URL = "/api/v1/chat/"


def chat(client, message, client_id, **extra):
    return client.post(URL, {"message": message, "client_id": str(client_id), **extra})


def user_messages():
    return Message.objects.filter(role="user").count()


@pytest.mark.django_db
def test_same_client_id_three_times_adds_one_task_and_one_user_message(api_client):
    client_id = uuid.uuid4()

    responses = [chat(api_client, "add buy milk", client_id) for _ in range(3)]

    assert [r.status_code for r in responses] == [200, 200, 200]
    assert responses[1].content == responses[0].content == responses[2].content
    assert Task.objects.count() == 1
    assert user_messages() == 1
    assert Message.objects.count() == 4
    assert responses[0].json()["user_message"]["client_id"] == str(client_id)


@pytest.mark.django_db
def test_a_replay_answers_the_conversation_the_first_try_started(api_client):
    client_id = uuid.uuid4()
    first = chat(api_client, "add buy milk", client_id).json()

    again = chat(api_client, "add buy milk", client_id).json()
    explicit = chat(api_client, "add buy milk", client_id, conversation_id=first["conversation_id"])

    assert again["conversation_id"] == first["conversation_id"]
    assert explicit.status_code == 200


@pytest.mark.django_db
def test_the_same_client_id_for_another_message_or_conversation_is_422(api_client, user):
    client_id = uuid.uuid4()
    first = chat(api_client, "add buy milk", client_id).json()
    other = chat(api_client, "hello", uuid.uuid4()).json()

    changed = chat(api_client, "add buy bread", client_id)
    moved = chat(api_client, "add buy milk", client_id, conversation_id=other["conversation_id"])

    assert (changed.status_code, moved.status_code) == (422, 422)
    assert "new client_id" in changed.json()["detail"]
    assert Task.objects.count() == 1
    assert Message.objects.filter(conversation_id=first["conversation_id"]).count() == 4


@pytest.mark.django_db
def test_client_ids_are_per_user(api_client, other_user):
    client_id = uuid.uuid4()

    mine = chat(api_client, "add buy milk", client_id)
    theirs = chat(client_for(other_user), "add buy milk", client_id)

    assert (mine.status_code, theirs.status_code) == (200, 200)
    assert mine.json()["conversation_id"] != theirs.json()["conversation_id"]
    assert Task.objects.filter(owner=other_user).count() == 1


class RetryingAgent:
    """While the turn runs, sends the same request again: it must be told 409."""

    seen = []

    def next_step(self, *, history, tools, final, timeout, context):
        message = history[-1]
        response = chat(client_for(message.owner), message.content, message.client_id)
        RetryingAgent.seen.append((response.status_code, response.json()))
        return RulesAgent().next_step(
            history=history, tools=tools, final=final, timeout=timeout, context=context
        )


@pytest.mark.django_db
def test_a_retry_while_the_turn_runs_is_409(api_client, settings):
    settings.CHAT_AGENT = "chat.tests.test_chat_retries.RetryingAgent"
    RetryingAgent.seen = []

    response = chat(api_client, "hello", uuid.uuid4())

    assert response.status_code == 200
    [(status, body)] = RetryingAgent.seen
    assert status == 409
    assert "still running" in body["detail"]


class FlakyAgent:
    """The rules agent, failing every second time it is asked while `failures` last."""

    failures = 0
    asked = []

    def next_step(self, *, history, tools, final, timeout, context):
        FlakyAgent.asked.append(sum(1 for m in history if m.role == "tool"))
        if FlakyAgent.failures and len(FlakyAgent.asked) % 2 == 0:
            FlakyAgent.failures -= 1
            raise AgentFailed("The model server refused the request (HTTP 500).")
        return RulesAgent().next_step(
            history=history, tools=tools, final=final, timeout=timeout, context=context
        )


@pytest.fixture
def flaky_agent(settings):
    settings.CHAT_AGENT = "chat.tests.test_chat_retries.FlakyAgent"
    FlakyAgent.failures = 1
    FlakyAgent.asked = []
    return FlakyAgent


@pytest.mark.django_db
def test_retry_after_agent_failure_does_not_repeat_tool_call(api_client, flaky_agent):
    client_id = uuid.uuid4()

    failed = chat(api_client, "add buy milk", client_id)

    assert failed.status_code == 502
    assert failed.json() == {"detail": "The model server refused the request (HTTP 500)."}
    assert Task.objects.count() == 1
    assert list(Message.objects.values_list("role", flat=True)) == ["user", "assistant", "tool"]
    assert ChatTurn.objects.get().status == "failed"

    retried = chat(api_client, "add buy milk", client_id)

    assert retried.status_code == 200
    assert Task.objects.count() == 1
    body = retried.json()
    assert [c["name"] for c in body["tool_calls"]] == ["add_task"]
    assert body["assistant_message"]["content"].startswith("Added “buy milk”")
    assert list(Message.objects.values_list("role", flat=True)) == [
        "user",
        "assistant",
        "tool",
        "assistant",
    ]
    # Asked with no result, failed after one, then only asked for the reply.
    assert flaky_agent.asked == [0, 1, 1]
    turn = ChatTurn.objects.get()
    assert (turn.status, turn.attempts, turn.error) == ("succeeded", 2, "")


@pytest.mark.django_db
def test_retry_after_a_failed_lookup_completes_the_task_once(api_client, user, flaky_agent):
    milk = TaskFactory(owner=user, title="Buy milk")
    flaky_agent.failures = 2
    client_id = uuid.uuid4()

    assert chat(api_client, "I finished buying milk", client_id).status_code == 502
    assert chat(api_client, "I finished buying milk", client_id).status_code == 502
    response = chat(api_client, "I finished buying milk", client_id)

    assert response.status_code == 200
    assert [c["name"] for c in response.json()["tool_calls"]] == ["list_tasks", "complete_task"]
    assert Message.objects.filter(role="tool").count() == 2
    milk.refresh_from_db()
    assert milk.completed


class TwoCallsAgent:
    """Adds milk and eggs in one step, then answers."""

    def next_step(self, *, history, tools, final, timeout, context):
        if any(m.role == "tool" for m in history):
            return Step(text="Added both.")
        return Step(
            tool_calls=(
                ToolCall("milk", "add_task", {"title": "milk"}),
                ToolCall("eggs", "add_task", {"title": "eggs"}),
            )
        )


def fail_once_at_call(monkeypatch, number):
    """Make the `number`th tool call (1-based) raise as a lost connection would."""
    calls = []
    real_call_tool = tools.call_tool

    def database_down_once(**kwargs):
        calls.append(kwargs["arguments"].get("title"))
        if len(calls) == number:
            raise OperationalError("connection lost")
        return real_call_tool(**kwargs)

    monkeypatch.setattr(tools, "call_tool", database_down_once)
    return calls


@pytest.mark.django_db
def test_a_stored_call_without_a_result_runs_once_on_retry(api_client, monkeypatch, settings):
    settings.CHAT_AGENT = "chat.tests.test_chat_retries.TwoCallsAgent"
    calls = fail_once_at_call(monkeypatch, 2)
    client_id = uuid.uuid4()

    failed = chat(api_client, "add milk and eggs", client_id)

    assert failed.status_code == 503
    assert list(Task.objects.values_list("title", flat=True)) == ["milk"]
    assert list(Message.objects.values_list("role", flat=True)) == ["user", "assistant", "tool"]

    retried = chat(api_client, "add milk and eggs", client_id)

    assert retried.status_code == 200
    assert calls == ["milk", "eggs", "eggs"]
    assert sorted(Task.objects.values_list("title", flat=True)) == ["eggs", "milk"]
    assert Message.objects.filter(role="tool").count() == 2


@pytest.mark.django_db
def test_a_failed_first_call_stores_neither_its_step_nor_its_effect(api_client, monkeypatch):
    """A step is stored with its first call's result: the retry asks the agent again."""
    calls = fail_once_at_call(monkeypatch, 1)
    client_id = uuid.uuid4()

    failed = chat(api_client, "add buy milk", client_id)

    assert failed.status_code == 503
    assert not Task.objects.exists()
    assert list(Message.objects.values_list("role", flat=True)) == ["user"]

    retried = chat(api_client, "add buy milk", client_id)

    assert retried.status_code == 200
    assert calls == ["buy milk", "buy milk"]
    assert Task.objects.count() == 1
    assert list(Message.objects.values_list("role", flat=True)) == [
        "user",
        "assistant",
        "tool",
        "assistant",
    ]


@pytest.mark.django_db
def test_a_call_whose_result_a_racing_try_stored_first_is_undone(api_client, user):
    chat(api_client, "add buy milk", uuid.uuid4())
    turn = ChatTurn.objects.get()
    turn.owner = user
    step = Message.objects.get(role="assistant", tool_calls__isnull=False)
    [call] = requested_calls(step)

    with pytest.raises(turns._StoredElsewhere), transaction.atomic():
        turns._run_call(turn, 0, 0, call)

    assert Task.objects.count() == 1
    assert Message.objects.filter(role="tool").count() == 1


@pytest.mark.django_db
def test_a_turn_whose_lease_expired_is_taken_over(api_client, user):
    client_id = uuid.uuid4()
    response = chat(api_client, "add buy milk", client_id)
    turn = ChatTurn.objects.get()
    # As if the process died after storing the reply but before marking success.
    ChatTurn.objects.filter(pk=turn.pk).update(
        status="running", assistant_message=None, lease_expires_at=timezone.now()
    )
    running = ChatTurn.objects.get()

    retried = chat(api_client, "add buy milk", client_id)

    assert retried.status_code == 200
    assert retried.json() == response.json()
    assert Task.objects.count() == 1
    running.refresh_from_db()
    assert (running.status, running.attempts) == ("succeeded", 2)


@pytest.mark.django_db
def test_a_live_lease_is_409_until_it_expires(api_client):
    client_id = uuid.uuid4()
    chat(api_client, "add buy milk", client_id)
    ChatTurn.objects.update(
        status="running",
        assistant_message=None,
        lease_expires_at=timezone.now() + timedelta(minutes=1),
    )

    assert chat(api_client, "add buy milk", client_id).status_code == 409

    ChatTurn.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert chat(api_client, "add buy milk", client_id).status_code == 200
    assert Task.objects.count() == 1


@pytest.mark.django_db
def test_a_stale_try_does_not_mark_a_newer_try_failed(api_client):
    chat(api_client, "add buy milk", uuid.uuid4())
    ChatTurn.objects.update(status="running", attempts=2)
    stale = ChatTurn.objects.get()
    stale.attempts = 1

    turns._mark_failed(turns.Run(stale, None), AgentFailed())

    assert ChatTurn.objects.get().status == "running"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_same_client_id_from_five_threads_at_once_adds_one_task(user):
    client_id = uuid.uuid4()

    responses, errors = run_at_once(5, lambda _: chat(client_for(user), "add buy milk", client_id))
    assert errors == []

    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {200, 409}
    assert 200 in statuses
    assert Task.objects.count() == 1
    assert user_messages() == 1
    assert ChatTurn.objects.count() == 1
    final = chat(client_for(user), "add buy milk", client_id)
    assert final.status_code == 200
    assert all(r.content == final.content for r in responses if r.status_code == 200)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_five_retries_of_a_failed_turn_at_once_finish_it_once(user, flaky_agent):
    client_id = uuid.uuid4()
    assert chat(client_for(user), "add buy milk", client_id).status_code == 502
    flaky_agent.failures = 0

    responses, errors = run_at_once(5, lambda _: chat(client_for(user), "add buy milk", client_id))
    assert errors == []

    assert set(r.status_code for r in responses) <= {200, 409}
    assert Task.objects.count() == 1
    assert Message.objects.filter(role="tool").count() == 1
    assert Message.objects.filter(role="assistant", tool_calls__isnull=True).count() == 1
    assert ChatTurn.objects.get().status == "succeeded"


@pytest.mark.django_db
def test_a_replay_survives_a_lower_tool_round_setting(api_client, user, settings):
    TaskFactory(owner=user, title="Buy milk")
    client_id = uuid.uuid4()
    first = chat(api_client, "I finished buying milk", client_id)
    settings.CHAT_MAX_TOOL_ROUNDS = 1

    again = chat(api_client, "I finished buying milk", client_id)

    assert again.status_code == 200
    assert again.json()["assistant_message"] == first.json()["assistant_message"]
