"""A short flow through a Python client generated from /api/schema/, as a new user writes it.

`test_generated_client.py` generates the package `todo_client` with
openapi-python-client, type-checks this file against it with `mypy --strict` and
runs `run()` against a live server. Every answer is narrowed with `isinstance`,
never cast: if the schema typed a field the server always sends as optional, or
an operation's answer as something else, mypy or an assertion here says so.
"""

import uuid

from todo_client import AuthenticatedClient, Client
from todo_client.api.auth import auth_register_create, auth_token_create
from todo_client.api.chat import chat_create
from todo_client.api.conversations import (
    conversations_create,
    conversations_messages_create,
    conversations_messages_list,
)
from todo_client.api.tasks import (
    tasks_create,
    tasks_destroy,
    tasks_list,
    tasks_partial_update,
    tasks_retrieve,
)
from todo_client.models import (
    Account,
    ChatTurnRequest,
    ChatTurnResponse,
    Conversation,
    ConversationRequest,
    ConversationsMessagesListOrdering,
    Error,
    Message,
    MessageRequest,
    PaginatedMessageList,
    PaginatedTaskList,
    PatchedTaskRequest,
    RegisterRequest,
    RoleEnum,
    Task,
    TaskRequest,
    TasksListOrdering,
    TokenObtainPair,
    TokenObtainPairRequest,
    ToolResult,
    ValidationError,
)

PASSWORD = "correct-horse-battery-staple"


def run(base_url: str, username: str) -> None:
    public = Client(base_url=base_url, raise_on_unexpected_status=True)

    account = auth_register_create.sync(
        client=public, body=RegisterRequest(username=username, password=PASSWORD)
    )
    assert isinstance(account, Account), account
    assert account.username == username and account.email == ""
    pair = auth_token_create.sync(
        client=public, body=TokenObtainPairRequest(username=username, password=PASSWORD)
    )
    assert isinstance(pair, TokenObtainPair), pair
    client = AuthenticatedClient(base_url=base_url, token=pair.access)

    # Tasks: create, a refused one, change, list, read, delete.
    task = tasks_create.sync(client=client, body=TaskRequest(title="Buy milk"))
    assert isinstance(task, Task), task
    description: str = task.description
    completed: bool = task.completed
    assert (description, completed) == ("", False)
    refused = tasks_create.sync(client=client, body=TaskRequest(title=" "))
    assert isinstance(refused, ValidationError), refused
    assert refused.additional_properties["title"] == ["This field may not be blank."]
    done = tasks_partial_update.sync(
        id=task.id, client=client, body=PatchedTaskRequest(completed=True)
    )
    assert isinstance(done, Task) and done.completed
    page = tasks_list.sync(client=client, completed=True, ordering=TasksListOrdering.CREATED_AT)
    assert isinstance(page, PaginatedTaskList), page
    assert [listed.id for listed in page.results] == [task.id] and page.next_ is None
    assert tasks_destroy.sync_detailed(id=task.id, client=client).status_code == 204
    gone = tasks_retrieve.sync(id=task.id, client=client)
    assert isinstance(gone, Error) and gone.detail

    # A conversation, and an idempotent append: the same client_id stores one message.
    conversation = conversations_create.sync(
        client=client, body=ConversationRequest(title="Groceries")
    )
    assert isinstance(conversation, Conversation), conversation
    client_id = uuid.uuid4()
    body = MessageRequest(role=RoleEnum.USER, content="Hello", client_id=client_id)
    first = conversations_messages_create.sync_detailed(
        id=conversation.id, client=client, body=body
    )
    again = conversations_messages_create.sync_detailed(
        id=conversation.id, client=client, body=body
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert isinstance(first.parsed, Message) and isinstance(again.parsed, Message)
    assert again.parsed.id == first.parsed.id and again.parsed.client_id == client_id
    messages = conversations_messages_list.sync(
        id=conversation.id, client=client, ordering=ConversationsMessagesListOrdering.SEQ_DESC
    )
    assert isinstance(messages, PaginatedMessageList), messages
    assert [message.seq for message in messages.results] == [1]

    # A chat turn: the assistant adds a task with a tool, and says so.
    turn = chat_create.sync(
        client=client,
        body=ChatTurnRequest(message="add call mom", conversation_id=conversation.id),
    )
    assert isinstance(turn, ChatTurnResponse), turn
    assert turn.conversation_id == conversation.id
    assert turn.user_message.content == "add call mom"
    assert turn.assistant_message.role == RoleEnum.ASSISTANT
    [call] = turn.tool_calls
    assert call.name == "add_task"
    assert call.arguments.additional_properties["title"] == "call mom"
    assert isinstance(call.result, ToolResult) and call.result.ok, call.result
    added = tasks_list.sync(client=client)
    assert isinstance(added, PaginatedTaskList), added
    assert [listed.title for listed in added.results] == ["call mom"]
