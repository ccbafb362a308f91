"""POST /api/v1/chat/ with the rules agent: each phrase does the right thing, and the
turn is stored in order with its tool calls and results."""

from datetime import UTC, datetime

import pytest
from django.db import connection

from chat.agents import Step, ToolCall
from chat.agents.rules import Intent, TaskRef, parse
from chat.models import ChatTurn, Conversation, Message
from tasks.models import Task
from testing.factories import ConversationFactory, TaskFactory, add_messages

URL = "/api/v1/chat/"


def chat(client, message, **extra):
    return client.post(URL, {"message": message, **extra}, format="json")


def ok(client, message, **extra):
    response = chat(client, message, **extra)
    assert response.status_code == 200, response.content
    return response.json()


def reply(client, message, **extra):
    return ok(client, message, **extra)["assistant_message"]["content"]


def stored(conversation_id):
    return list(
        Message.objects.filter(conversation_id=conversation_id).values_list(
            "seq", "role", "tool_calls"
        )
    )


@pytest.mark.django_db
def test_add_buy_milk_adds_a_task_and_stores_the_turn_in_order(api_client, user):
    body = ok(api_client, "add buy milk")

    task = Task.objects.get()
    assert (task.owner, task.title, task.completed) == (user, "buy milk", False)
    conversation = Conversation.objects.get(pk=body["conversation_id"])
    assert conversation.owner == user
    assert conversation.title == "add buy milk"
    assert body["user_message"]["content"] == "add buy milk"
    assert body["user_message"]["role"] == "user"
    assert body["assistant_message"]["content"] == (
        f"Added “buy milk” to your list (task #{task.id})."
    )
    assert body["tool_calls"] == [
        {
            "id": "call_0",
            "name": "add_task",
            "arguments": {"title": "buy milk"},
            "result": {
                "ok": True,
                "task": {
                    "id": task.id,
                    "title": "buy milk",
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
    rows = stored(conversation.pk)
    assert [(seq, role) for seq, role, _ in rows] == [
        (1, "user"),
        (2, "assistant"),
        (3, "tool"),
        (4, "assistant"),
    ]
    assert rows[1][2] == [{"id": "call_0", "name": "add_task", "arguments": {"title": "buy milk"}}]
    assert rows[2][2] == [
        {"id": "call_0", "name": "add_task", "result": body["tool_calls"][0]["result"]}
    ]
    assert rows[3][2] is None
    assert body["assistant_message"]["seq"] == 4
    conversation.refresh_from_db()
    assert conversation.message_count == 4


@pytest.mark.django_db
def test_remind_me_adds_the_task_due_tomorrow(api_client, settings):
    settings.CHAT_NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)

    text = reply(api_client, "Remind me to call mom tomorrow.")

    task = Task.objects.get()
    assert task.title == "call mom"
    assert task.due_at == datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
    assert text == f"Added “call mom” to your list (task #{task.id}), due tomorrow at 9:00 AM."


@pytest.mark.django_db
def test_whats_on_my_list_shows_every_task_of_the_caller_only(api_client, user, other_user):
    milk = TaskFactory(owner=user, title="Buy milk")
    mom = TaskFactory(owner=user, title="Call mom", completed=True)
    TaskFactory(owner=other_user, title="Not mine")

    text = reply(api_client, "what's on my list?")

    assert text == f"Here's your list:\n- #{mom.id} Call mom (done)\n- #{milk.id} Buy milk"


@pytest.mark.django_db
def test_show_pending_tasks_lists_only_pending_ones(api_client, user):
    milk = TaskFactory(owner=user, title="Buy milk")
    TaskFactory(owner=user, title="Call mom", completed=True)

    body = ok(api_client, "show pending tasks")

    assert body["tool_calls"][0]["arguments"] == {"status": "pending"}
    assert body["assistant_message"]["content"] == (
        f"Here are your pending tasks:\n- #{milk.id} Buy milk"
    )


@pytest.mark.django_db
def test_empty_list_is_said_kindly(api_client):
    assert reply(api_client, "what's on my list") == (
        "Your list is empty. Add something with “add buy milk”."
    )
    assert "all caught up" in reply(api_client, "show pending tasks")


@pytest.mark.django_db
def test_mark_id_as_done_completes_that_task(api_client, user):
    task = TaskFactory(owner=user, title="Buy milk")

    text = reply(api_client, f"mark {task.id} as done")

    task.refresh_from_db()
    assert task.completed
    assert text == f"Marked “Buy milk” (#{task.id}) as done. Nice work!"


@pytest.mark.django_db
def test_i_finished_buying_milk_completes_the_task_matched_by_title(api_client, user):
    milk = TaskFactory(owner=user, title="Buy milk")
    bread = TaskFactory(owner=user, title="Buy bread")

    body = ok(api_client, "I finished buying milk")

    assert [(c["name"], c["arguments"]) for c in body["tool_calls"]] == [
        ("list_tasks", {"status": "all", "search": "milk"}),
        ("complete_task", {"task_id": milk.id}),
    ]
    milk.refresh_from_db()
    bread.refresh_from_db()
    assert (milk.completed, bread.completed) == (True, False)
    assert [role for _, role, _ in stored(body["conversation_id"])] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "assistant",
    ]


@pytest.mark.django_db
def test_delete_the_milk_task_deletes_it(api_client, user):
    milk = TaskFactory(owner=user, title="Buy milk")
    TaskFactory(owner=user, title="Call mom")

    text = reply(api_client, "delete the milk task")

    assert list(Task.objects.values_list("title", flat=True)) == ["Call mom"]
    assert text == f"Deleted “Buy milk” (#{milk.id}) from your list."


@pytest.mark.django_db
def test_rename_task_by_id_renames_it(api_client, user):
    task = TaskFactory(owner=user, title="Buy milk")

    text = reply(api_client, f"rename task {task.id} to buy oat milk")

    task.refresh_from_db()
    assert task.title == "buy oat milk"
    assert text == f"Renamed task #{task.id} to “buy oat milk”."


@pytest.mark.django_db
def test_rename_by_title_and_reopen_by_id(api_client, user):
    task = TaskFactory(owner=user, title="Buy milk", completed=True)

    reply(api_client, "change buy milk to Buy oat milk")
    text = reply(api_client, f"mark {task.id} as not done")

    task.refresh_from_db()
    assert (task.title, task.completed) == ("Buy oat milk", False)
    assert text == f"Marked “Buy oat milk” (#{task.id}) as not done."


@pytest.mark.django_db
def test_a_task_that_does_not_exist_is_said_clearly(api_client, other_user):
    theirs = TaskFactory(owner=other_user, title="Buy milk")

    text = reply(api_client, f"mark {theirs.id} as done")
    by_title = reply(api_client, "delete the unicorn task")

    assert text.startswith(f"I couldn't find task #{theirs.id} in your list.")
    assert by_title.startswith("I couldn't find a task matching “unicorn”.")
    theirs.refresh_from_db()
    assert not theirs.completed


@pytest.mark.django_db
def test_an_ambiguous_title_asks_which_one(api_client, user):
    first = TaskFactory(owner=user, title="Buy milk")
    second = TaskFactory(owner=user, title="Buy oat milk")

    text = reply(api_client, "delete milk")

    assert Task.objects.count() == 2
    assert f"#{second.id} Buy oat milk" in text and f"#{first.id} Buy milk" in text
    assert "Which one?" in text


@pytest.mark.django_db
def test_what_it_does_not_understand_it_says_and_calls_no_tool(api_client):
    body = ok(api_client, "the weather is nice")

    assert body["assistant_message"]["content"].startswith("Sorry, I didn't understand that.")
    assert body["tool_calls"] == []
    assert [role for _, role, _ in stored(body["conversation_id"])] == ["user", "assistant"]


@pytest.mark.django_db
def test_a_second_turn_continues_the_conversation(api_client, user):
    first = ok(api_client, "add buy milk")

    second = ok(api_client, "show my tasks", conversation_id=first["conversation_id"])

    assert second["conversation_id"] == first["conversation_id"]
    assert second["user_message"]["seq"] == 5
    assert Conversation.objects.get().message_count == 8


@pytest.mark.django_db
def test_another_users_conversation_is_404_and_stores_nothing(api_client, other_user):
    theirs = ConversationFactory(owner=other_user)

    response = chat(api_client, "add buy milk", conversation_id=theirs.pk)
    missing = chat(api_client, "add buy milk", conversation_id=theirs.pk + 1000)

    assert response.status_code == 404
    assert missing.status_code == 404
    assert response.json() == {"detail": "No such conversation."}
    assert not Message.objects.exists()
    assert not Task.objects.exists()
    assert not ChatTurn.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "message"),
        ({"message": ""}, "message"),
        ({"message": "x" * 10_001}, "message"),
        ({"message": "add a\x00b"}, "message"),
        ({"message": 5}, "message"),
        ({"message": True}, "message"),
        ({"message": ["add milk"]}, "message"),
        ({"message": "add milk", "conversation_id": "abc"}, "conversation_id"),
        ({"message": "add milk", "conversation_id": 0}, "conversation_id"),
        ({"message": "add milk", "client_id": "not-a-uuid"}, "client_id"),
    ],
)
def test_a_bad_message_is_400_and_stores_nothing(api_client, body, field):
    response = api_client.post(URL, body, format="json")

    assert response.status_code == 400
    assert set(response.json()) & {field, "detail"}
    assert not Message.objects.exists()
    assert not Conversation.objects.exists()
    assert not Task.objects.exists()


@pytest.mark.django_db
def test_chat_needs_authentication(anon_client):
    response = chat(anon_client, "add buy milk")

    assert response.status_code == 401
    assert not Message.objects.exists()


@pytest.mark.django_db
def test_chat_is_post_only(api_client):
    assert api_client.get(URL).status_code == 405


@pytest.mark.django_db
def test_the_schema_describes_the_chat_turn(api_client):
    schema = api_client.get("/api/schema/?format=json").json()

    operation = schema["paths"]["/api/v1/chat/"]["post"]
    assert set(operation["responses"]) >= {"200", "400", "404", "409", "422", "502", "503"}


class RecordingAgent:
    """Records what the turn hands the agent, then lets the rules agent answer."""

    calls = []

    def next_step(self, *, history, tools, final, timeout, context):
        from chat.agents.rules import RulesAgent

        RecordingAgent.calls.append(
            {
                "history": [(m.role, m.content) for m in history],
                "in_transaction": connection.in_atomic_block,
                "tools": [t.name for t in tools],
            }
        )
        return RulesAgent().next_step(
            history=history, tools=tools, final=final, timeout=timeout, context=context
        )


@pytest.fixture
def recording_agent(settings):
    RecordingAgent.calls = []
    settings.CHAT_AGENT = "chat.tests.test_chat_turn.RecordingAgent"
    return RecordingAgent


@pytest.mark.django_db(transaction=True)
def test_no_transaction_is_open_while_the_agent_runs(api_client, recording_agent):
    ok(api_client, "add buy milk")

    assert len(recording_agent.calls) == 2
    assert [c["in_transaction"] for c in recording_agent.calls] == [False, False]
    assert recording_agent.calls[0]["tools"] == [
        "add_task",
        "list_tasks",
        "complete_task",
        "delete_task",
        "update_task",
    ]


@pytest.mark.django_db
def test_the_agent_sees_a_bounded_window_of_history(
    api_client, user, settings, recording_agent, django_assert_max_num_queries
):
    settings.CHAT_HISTORY_WINDOW = 3
    conversation = ConversationFactory(owner=user)
    add_messages(conversation, 10)

    # 44 with the events, and one read of the user's time zone for the agent's context.
    with django_assert_max_num_queries(45):
        ok(api_client, "add buy milk", conversation_id=conversation.pk)

    first, second = recording_agent.calls
    assert first["history"] == [
        ("user", "message 7"),
        ("user", "message 8"),
        ("user", "message 9"),
        ("user", "add buy milk"),
    ]
    assert [role for role, _ in second["history"]] == ["user"] * 4 + ["assistant", "tool"]


class BrokenAgent:
    def next_step(self, *, history, tools, final, timeout, context):
        raise RuntimeError("boom")


class EndlessAgent:
    """Asks for list_tasks for ever."""

    def next_step(self, *, history, tools, final, timeout, context):
        calls = sum(1 for m in history if m.role == "tool")
        return Step(tool_calls=(ToolCall(f"c{calls}", "list_tasks", {}),))


@pytest.mark.django_db
def test_an_agent_failure_is_502_keeps_the_user_message_and_stores_no_error(api_client, settings):
    settings.CHAT_AGENT = "chat.tests.test_chat_turn.BrokenAgent"

    response = chat(api_client, "add buy milk")

    assert response.status_code == 502
    assert response.json() == {"detail": "The assistant failed to answer; try again."}
    assert list(Message.objects.values_list("role", "content")) == [("user", "add buy milk")]
    turn = ChatTurn.objects.get()
    assert (turn.status, turn.assistant_message) == ("failed", None)


@pytest.mark.django_db
def test_the_tool_loop_is_cut_at_the_bound(api_client, settings):
    settings.CHAT_AGENT = "chat.tests.test_chat_turn.EndlessAgent"
    settings.CHAT_MAX_TOOL_ROUNDS = 3

    response = chat(api_client, "list forever")

    assert response.status_code == 502
    assert "3 rounds" in response.json()["detail"]
    roles = list(Message.objects.values_list("role", flat=True))
    assert roles == ["user"] + ["assistant", "tool"] * 3


@pytest.mark.django_db
def test_an_unknown_agent_setting_is_503(api_client, settings):
    settings.CHAT_AGENT = "nonsense"

    response = chat(api_client, "add buy milk")

    assert response.status_code == 503
    assert "CHAT_AGENT" in response.json()["detail"]
    assert Message.objects.count() == 1


@pytest.mark.parametrize(
    "message, intent",
    [
        ("add buy milk", Intent("add", title="buy milk")),
        ("Add a task to buy milk.", Intent("add", title="buy milk")),
        ("please add walk the dog to my list", Intent("add", title="walk the dog")),
        ("remind me to call mom", Intent("add", title="call mom")),
        ("what's on my list", Intent("list", status="all")),
        ("show my tasks", Intent("list", status="all")),
        ("show pending tasks", Intent("list", status="pending")),
        ("what do I have to do?", Intent("list", status="pending")),
        ("show completed tasks", Intent("list", status="completed")),
        ("mark 3 as done", Intent("complete", ref=TaskRef(task_id=3))),
        ("Mark task #3 complete", Intent("complete", ref=TaskRef(task_id=3))),
        ("I finished buying milk", Intent("complete", ref=TaskRef(text="buying milk"))),
        ("buy milk is done", Intent("complete", ref=TaskRef(text="buy milk"))),
        ("delete the milk task", Intent("delete", ref=TaskRef(text="milk"))),
        ("remove task 2", Intent("delete", ref=TaskRef(task_id=2))),
        (
            "rename task 2 to buy oat milk",
            Intent("rename", title="buy oat milk", ref=TaskRef(task_id=2)),
        ),
        ("mark 3 as not done", Intent("reopen", ref=TaskRef(task_id=3))),
        ("hello", Intent("greet")),
        ("help", Intent("help")),
        ("the weather is nice", Intent("unknown")),
        ("add " + "x" * 2000, Intent("unknown")),
    ],
)
def test_rules_agent_understands(message, intent):
    assert parse(message) == intent


@pytest.mark.django_db
def test_deleting_a_conversation_or_the_account_deletes_its_turns(api_client, other_client):
    from django.db.models.deletion import Collector

    mine = ok(api_client, "add buy milk")
    ok(other_client, "add buy bread")

    assert api_client.delete(f"/api/v1/conversations/{mine['conversation_id']}/").status_code == 204
    assert ChatTurn.objects.count() == 1
    assert other_client.delete("/api/v1/auth/me/").status_code == 204
    assert not ChatTurn.objects.exists()
    assert not Message.objects.exists()
    # Turns do not stop a conversation's messages being deleted in one statement.
    assert Collector(using="default").can_fast_delete(Message.objects.all())
