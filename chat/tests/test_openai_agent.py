"""The openai agent through the real SDK against a fake OpenAI-compatible server.

The fake (`testing.fake_openai`) is a real HTTP server on loopback that answers
POST /v1/chat/completions from a script (tool calls, text, errors, silence),
streamed as the agent asks (`stream=True`), and records every request.
"""

import time
import uuid

import pytest

from chat import events
from chat.agents.openai_agent import chat_messages
from chat.models import ChatTurn, Message
from tasks.models import Task
from testing.factories import ConversationFactory, TaskFactory
from testing.fake_openai import FakeOpenAI, Silence, text_reply, tool_reply
from testing.pgserver import free_port
from testing.sse import parse

URL = "/api/v1/chat/"


@pytest.fixture
def fake_openai(settings, monkeypatch):
    fake = FakeOpenAI()
    settings.CHAT_AGENT = "openai"
    settings.CHAT_MODEL = "fake-model"
    settings.CHAT_AGENT_TIMEOUT = 10
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_BASE_URL", fake.url)
    yield fake
    fake.close()


def chat(client, message, **extra):
    return client.post(URL, {"message": message, **extra})


@pytest.mark.django_db
def test_tool_calls_execute_as_the_caller_and_results_are_stored(
    api_client, user, other_user, fake_openai
):
    fake_openai.script = [
        tool_reply(("call_a", "add_task", {"title": "Buy milk"})),
        text_reply("I added “Buy milk” to your list."),
    ]

    response = chat(api_client, "please remember to buy milk")

    assert response.status_code == 200, response.content
    body = response.json()
    task = Task.objects.get()
    assert task.owner == user and task.title == "Buy milk"
    assert body["assistant_message"]["content"] == "I added “Buy milk” to your list."
    assert body["tool_calls"] == [
        {
            "id": "call_a",
            "name": "add_task",
            "arguments": {"title": "Buy milk"},
            "result": {
                "ok": True,
                "task": {
                    "id": task.id,
                    "title": "Buy milk",
                    "description": "",
                    "completed": False,
                    "due_at": None,
                    "priority": "normal",
                    "tags": [],
                    "repeat": None,
                },
            },
        }
    ]
    assert list(Message.objects.values_list("role", flat=True)) == [
        "user",
        "assistant",
        "tool",
        "assistant",
    ]
    first, second = fake_openai.requests
    assert first["path"] == "/v1/chat/completions"
    assert first["authorization"] == "Bearer test-key"
    assert first["model"] == "fake-model"
    assert first["tool_choice"] == "auto"
    assert [t["function"]["name"] for t in first["tools"]] == [
        "add_task",
        "list_tasks",
        "complete_task",
        "delete_task",
        "update_task",
    ]
    assert first["messages"][0]["role"] == "system"
    assert first["messages"][1:] == [{"role": "user", "content": "please remember to buy milk"}]
    assert second["messages"][2:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "add_task", "arguments": '{"title": "Buy milk"}'},
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "call_a",
            "content": Message.objects.get(role="tool").content,
        },
    ]


@pytest.mark.django_db
def test_the_model_cannot_act_as_another_user(api_client, other_user, fake_openai):
    theirs = TaskFactory(owner=other_user, title="Their task")
    fake_openai.script = [
        tool_reply(
            ("c1", "add_task", {"title": "Sneaky", "owner": other_user.pk}),
            ("c2", "delete_task", {"task_id": theirs.pk}),
            ("c3", "launch_rockets", "{}"),
            ("c4", "add_task", "{not json"),
        ),
        text_reply("I could not do that."),
    ]

    body = chat(api_client, "do things").json()

    assert [c["result"]["error"] for c in body["tool_calls"]] == [
        "invalid_arguments",
        "not_found",
        "unknown_tool",
        "invalid_arguments",
    ]
    assert list(Task.objects.values_list("title", flat=True)) == ["Their task"]
    assert Message.objects.filter(role="tool").count() == 4


@pytest.mark.django_db
def test_a_tool_call_loop_is_cut_at_the_bound(api_client, settings, fake_openai):
    settings.CHAT_MAX_TOOL_ROUNDS = 2
    fake_openai.script = [tool_reply((f"c{i}", "list_tasks", {})) for i in range(5)]

    response = chat(api_client, "loop")

    assert response.status_code == 502
    assert "2 rounds of tool calls" in response.json()["detail"]
    assert [r["tool_choice"] for r in fake_openai.requests] == ["auto", "auto", "none"]
    assert list(Message.objects.values_list("role", flat=True)) == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
    ]
    assert ChatTurn.objects.get().status == "failed"


@pytest.mark.django_db
def test_at_the_bound_the_model_gives_its_final_answer(api_client, settings, fake_openai):
    settings.CHAT_MAX_TOOL_ROUNDS = 1
    fake_openai.script = [
        tool_reply(("c0", "list_tasks", {})),
        text_reply("Your list is empty."),
    ]

    response = chat(api_client, "what's up")

    assert response.status_code == 200
    assert response.json()["assistant_message"]["content"] == "Your list is empty."
    assert fake_openai.requests[-1]["tool_choice"] == "none"


@pytest.mark.django_db
def test_a_timeout_is_503_and_keeps_the_users_message(api_client, settings, fake_openai):
    settings.CHAT_AGENT_TIMEOUT = 0.5
    fake_openai.script = [Silence()]

    response = chat(api_client, "add buy milk")

    assert response.status_code == 503
    assert response.json() == {"detail": "The assistant took too long to answer; try again."}
    assert list(Message.objects.values_list("role", "content")) == [("user", "add buy milk")]
    assert ChatTurn.objects.get().status == "failed"


@pytest.mark.django_db
def test_retry_after_a_timeout_continues_from_the_stored_tool_result(
    api_client, settings, fake_openai
):
    settings.CHAT_AGENT_TIMEOUT = 1
    fake_openai.script = [tool_reply(("call_a", "add_task", {"title": "Buy milk"})), Silence()]
    client_id = str(uuid.uuid4())

    first = chat(api_client, "add buy milk", client_id=client_id)
    fake_openai.script = [text_reply("Added it.")]
    retried = chat(api_client, "add buy milk", client_id=client_id)

    assert (first.status_code, retried.status_code) == (503, 200)
    assert Task.objects.count() == 1
    assert retried.json()["tool_calls"][0]["id"] == "call_a"
    last = fake_openai.requests[-1]["messages"]
    assert [m["role"] for m in last] == ["system", "user", "assistant", "tool"]
    assert last[-1]["tool_call_id"] == "call_a"
    assert len(fake_openai.requests) == 3


@pytest.mark.django_db
def test_a_model_server_error_is_502_with_no_retry(api_client, fake_openai):
    fake_openai.script = [(500, {"error": {"message": "overloaded"}})]

    response = chat(api_client, "add buy milk")

    assert response.status_code == 502
    assert response.json() == {"detail": "The model server refused the request (HTTP 500)."}
    assert len(fake_openai.requests) == 1
    assert Message.objects.count() == 1


@pytest.mark.django_db
def test_an_unreachable_model_server_is_503(api_client, fake_openai, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{free_port()}/v1")

    response = chat(api_client, "add buy milk")

    assert response.status_code == 503
    assert "cannot be reached" in response.json()["detail"]


@pytest.mark.django_db
def test_without_an_api_key_the_openai_agent_is_503(api_client, fake_openai, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")

    response = chat(api_client, "add buy milk")

    assert response.status_code == 503
    assert "OPENAI_API_KEY" in response.json()["detail"]
    assert fake_openai.requests == []


@pytest.mark.django_db
def test_an_empty_answer_is_502(api_client, fake_openai):
    fake_openai.script = [text_reply("")]

    response = chat(api_client, "hi")

    assert response.status_code == 502
    assert Message.objects.count() == 1


@pytest.mark.django_db
def test_history_sent_to_the_model_is_a_window_the_api_accepts(api_client, user, settings):
    conversation = ConversationFactory(owner=user)
    rows = [
        (
            "assistant",
            "Calling list_tasks.",
            [{"id": "old", "name": "list_tasks", "arguments": {}}],
        ),
        ("tool", "{}", [{"id": "old", "name": "list_tasks", "result": {"ok": True}}]),
        ("assistant", "Calling add_task.", [{"id": "lost", "name": "add_task", "arguments": {}}]),
        ("user", "hello", None),
        ("tool", "{}", [{"id": "stray", "result": {}}]),
        ("tool", "{}", {"not": "a list"}),
        ("system", "Be nice.", None),
    ]
    messages = [
        Message(conversation=conversation, owner=user, seq=i, role=r, content=c, tool_calls=t)
        for i, (r, c, t) in enumerate(rows, 1)
    ]

    assert chat_messages(messages[1:]) == [
        {"role": "user", "content": "hello"},
        {"role": "system", "content": "Be nice."},
    ]
    assert chat_messages(messages[:2])[0]["tool_calls"][0]["id"] == "old"
    assert chat_messages(messages[:2])[1] == {
        "role": "tool",
        "tool_call_id": "old",
        "content": "{}",
    }


STREAM = {"HTTP_ACCEPT": "text/event-stream"}


def reply_after_tools(got):
    last = max((i for i, e in enumerate(got) if e.name == "tool.result"), default=-1)
    return "".join(e.data["delta"] for e in got[last + 1 :] if e.name == "message.delta")


@pytest.mark.django_db(transaction=True)
def test_a_streamed_turn_passes_the_models_text_and_tool_calls_on_as_they_arrive(
    api_client, fake_openai, monkeypatch
):
    monkeypatch.setattr(events, "FLUSH_SECONDS", 0)
    fake_openai.token_delay = 0.01
    reply = "I added “Buy milk” to your list.\nAnything else?"
    fake_openai.script = [
        tool_reply(("call_a", "add_task", {"title": "Buy milk"}), text="Let me add that."),
        text_reply(reply),
    ]

    response = api_client.post(URL, {"message": "remember milk"}, **STREAM)
    got = parse(b"".join(response.streaming_content).decode())[0]

    names = [e.name for e in got]
    call = names.index("tool.call")
    assert names[0] == "turn.started" and names[-1] == "turn.done"
    assert names[call + 1] == "tool.result"
    before = "".join(e.data["delta"] for e in got[:call] if e.name == "message.delta")
    assert before == "Let me add that." == got[call].data["message"]["content"]
    assert got[call].data["message"]["tool_calls"] == [
        {"id": "call_a", "name": "add_task", "arguments": {"title": "Buy milk"}}
    ]
    assert len([n for n in names[call:] if n == "message.delta"]) > 3  # word by word
    assert reply_after_tools(got) == reply == Message.objects.last().content
    assert got[-1].data["assistant_message"]["content"] == reply
    assert Task.objects.get().title == "Buy milk"
    assert all(r["stream"] is True for r in fake_openai.requests)


@pytest.mark.django_db(transaction=True)
def test_a_cancel_stops_the_model_mid_reply_and_keeps_what_it_said(api_client, fake_openai):
    fake_openai.token_delay = 0.05
    fake_openai.script = [text_reply(" ".join(f"token{i}" for i in range(400)))]
    client_id = str(uuid.uuid4())
    response = api_client.post(URL, {"message": "tell me", "client_id": client_id}, **STREAM)
    parts = iter(response.streaming_content)
    seen = ""
    while "message.delta" not in seen:
        seen += next(parts).decode()

    started = time.monotonic()
    assert api_client.post(f"/api/v1/chat/turns/{client_id}/cancel/").status_code == 200
    got = parse(seen + b"".join(parts).decode())[0]

    assert time.monotonic() - started < 2
    assert got[-1].name == "turn.cancelled"
    stored = Message.objects.get(role="assistant").content
    assert stored.startswith("token0 token1") and "token399" not in stored
    assert reply_after_tools(got) == stored == got[-1].data["assistant_message"]["content"]
    deadline = time.monotonic() + 5
    while fake_openai.disconnects == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake_openai.disconnects == 1  # the model's stream was closed, not read to its end
    assert ChatTurn.objects.get().status == "cancelled"
