"""An account as NDJSON: export it whole, import it into another account.

One JSON object a line, `{"type": "user" | "task" | "conversation" | "message", ...}`
with each record's fields as the API shows them (shared/API.md, "History"): the
user first, then every task, then every conversation followed by its messages.

Export streams in constant memory: keyset batches (`id > last`, and for messages
`(conversation_id, seq) > last` within a run of conversations), each an ordinary
query, so it works through a transaction-mode PgBouncer (no server-side cursor).
It is not a snapshot: what is written while it runs may or may not be in it.

Import checks every line with the API's own rules (the serializers' fields and the
services' checks), in one transaction, and stores all or nothing with bulk inserts.
Tasks are driven by the task serializer and `TASK_FIELDS`, so a new task field is
exported and imported with nothing to change here.
"""

import io
import uuid
from datetime import datetime

import orjson
from django.db import transaction
from rest_framework.exceptions import ValidationError

from chat import selectors as chat_selectors
from chat import services as chat_services
from chat.models import Conversation, Message
from chat.serializers import ConversationSerializer, conversation_data, message_row_data
from core.errors import DomainError
from core.parsers import raw_json_problem
from core.renderers import OPTIONS
from tasks import selectors as task_selectors
from tasks.models import Task
from tasks.serializers import TaskSerializer, task_data

from .serializers import UserSerializer

ROWS_PER_QUERY = 1000
INSERTS_PER_QUERY = 1000
# Messages are streamed to the database in batches of this many (COPY on PostgreSQL).
MESSAGES_PER_BATCH = 5000
ROLES = frozenset(Message.Role.values)


# --- Export ---------------------------------------------------------------------------


def _line(kind, data):
    return orjson.dumps({"type": kind, **data}, option=OPTIONS) + b"\n"


def export_lines(*, user):
    """The account of `user` as NDJSON lines (bytes), produced lazily."""
    yield _line("user", UserSerializer(user).data)
    tasks = task_selectors.task_page_rows(user.pk).order_by("id")
    for batch in _batches_by_id(tasks):
        for row in batch:
            yield _line("task", task_data(row))
    conversations = chat_selectors.conversations_of(user.pk).values_list(
        *chat_selectors.CONVERSATION_FIELDS, named=True
    )
    for batch in _batches_by_id(conversations.order_by("id")):
        yield from _conversations_with_messages(batch)


def _batches_by_id(rows):
    """Lists of up to ROWS_PER_QUERY rows of `rows` (ordered by id), one query each."""
    last = 0
    while True:
        batch = list(rows.filter(id__gt=last)[:ROWS_PER_QUERY])
        if batch:
            yield batch
        if len(batch) < ROWS_PER_QUERY:
            return
        last = batch[-1].id


def _conversations_with_messages(conversations):
    """Each conversation's line, then its messages' lines, for one batch of them.

    Messages are read for runs of conversations holding about ROWS_PER_QUERY
    messages together (by their `message_count`), in (conversation, seq) order, in
    keyset batches: a long conversation takes several queries, many short ones one.
    """
    run, count = [], 0
    for conversation in conversations:
        run.append(conversation)
        count += conversation.message_count
        if count >= ROWS_PER_QUERY:
            yield from _run_lines(run)
            run, count = [], 0
    if run:
        yield from _run_lines(run)


def _run_lines(run):
    pending = iter(run)
    current = None
    ids = [conversation.id for conversation in run if conversation.message_count]
    for message in _messages_of(ids):
        while current is None or current.id != message.conversation_id:
            current = next(pending)
            yield _line("conversation", conversation_data(current))
        yield _line("message", message_row_data(message))
    for conversation in pending:  # those after the last one with messages
        yield _line("conversation", conversation_data(conversation))


def _messages_of(conversation_ids):
    if not conversation_ids:
        return
    rows = chat_selectors.messages_in(conversation_ids)
    after = None
    while True:
        page = rows if after is None else rows.filter(chat_selectors.after_message(*after))
        batch = list(page.order_by("conversation_id", "seq")[:ROWS_PER_QUERY])
        yield from batch
        if len(batch) < ROWS_PER_QUERY:
            return
        after = (batch[-1].conversation_id, batch[-1].seq)


# --- Import ---------------------------------------------------------------------------


class BadLine(DomainError):
    """A line of an import the API would refuse; `detail` names it (1-based)."""

    def __init__(self, number, problem):
        super().__init__(f"Line {number}: {problem}")


class EmptyImport(DomainError):
    default_detail = (
        "The body is empty: send the lines of an export (Content-Type: application/x-ndjson)."
    )


@transaction.atomic
def account_import(*, user, body):
    """Add the tasks, conversations and messages of NDJSON `body` to `user`'s account.

    Returns the counts added. All or nothing: the first line the API would refuse
    raises `BadLine` and the transaction stores nothing.
    """
    if not isinstance(body, bytes) or not body.strip():
        raise EmptyImport()
    with chat_services.CheckedMessages() as messages:
        importer = _Importer(user, messages)
        for number, raw in enumerate(io.BytesIO(body), start=1):
            if raw.strip():
                try:
                    importer.add(_record(raw))
                except (ValidationError, chat_services.InvalidMessage, _Invalid) as exc:
                    raise BadLine(number, _reason(exc)) from None
        return importer.finish()


class _Invalid(Exception):
    pass


def _record(raw):
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _Invalid(f"not valid JSON ({exc}).") from None
    if not isinstance(record, dict):
        raise _Invalid("must be a JSON object.")
    problem = raw_json_problem(raw, record)
    if problem:
        raise _Invalid(problem)
    return record


def _reason(exc):
    if isinstance(exc, ValidationError):
        detail = exc.detail
        if isinstance(detail, dict):
            return " ".join(
                f"{field}: {' '.join(str(m) for m in messages)}"
                if isinstance(messages, list)
                else f"{field}: {messages}"
                for field, messages in detail.items()
            )
        return " ".join(str(m) for m in detail) if isinstance(detail, list) else str(detail)
    return str(exc.detail if isinstance(exc, DomainError) else exc)


def _timestamp(record, name):
    value = record.get(name)
    if not isinstance(value, str):
        raise _Invalid(f"{name} must be an ISO 8601 timestamp.")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _Invalid(f"{name} must be an ISO 8601 timestamp.") from None
    if parsed.tzinfo is None:
        raise _Invalid(f"{name} must say its time zone (e.g. a Z suffix).")
    return parsed


def _whole_number(record, name):
    value = record.get(name)
    if type(value) is not int or not 0 < value < 2**63:
        raise _Invalid(f"{name} must be a positive whole number.")
    return value


class _Importer:
    """Validates records one at a time and inserts them in batches."""

    def __init__(self, user, stored_messages):
        self.user = user
        self.stored_messages = stored_messages  # chat_services.CheckedMessages
        self.tasks = []
        self.task_count = 0
        self.conversations = {}  # the body's conversation id → Conversation
        self.unsaved = []  # conversations not inserted yet
        self.messages = []
        self.message_count = 0
        self.client_ids = set()
        # One serializer of each kind validates every record (`run_validation`):
        # building one per record would rebuild its fields each time.
        self.task_serializer = TaskSerializer()
        self.conversation_serializer = ConversationSerializer()

    def add(self, record):
        kind = record.get("type")
        if kind == "user":
            return
        if kind == "task":
            self.add_task(record)
        elif kind == "conversation":
            self.add_conversation(record)
        elif kind == "message":
            self.add_message(record)
        else:
            raise _Invalid("type must be one of user, task, conversation, message.")

    def add_task(self, record):
        validated = self.task_serializer.run_validation(record)
        created_at, updated_at = _timestamp(record, "created_at"), _timestamp(record, "updated_at")
        task = Task(owner=self.user, **validated)
        self.tasks.append((task, created_at, updated_at))
        if len(self.tasks) >= INSERTS_PER_QUERY:
            self.flush_tasks()

    def add_conversation(self, record):
        number = _whole_number(record, "id")
        if number in self.conversations:
            raise _Invalid(f"conversation {number} appears twice.")
        validated = self.conversation_serializer.run_validation(record)
        conversation = Conversation(
            owner=self.user,
            created_at=_timestamp(record, "created_at"),
            updated_at=_timestamp(record, "updated_at"),
            **validated,
        )
        self.conversations[number] = conversation
        self.unsaved.append(conversation)

    def add_message(self, record):
        number = record.get("conversation")
        conversation = self.conversations.get(number) if type(number) is int else None
        if conversation is None:
            raise _Invalid("conversation must be the id of a conversation line above it.")
        seq = record.get("seq")
        if type(seq) is not int or seq != conversation.message_count + 1:
            raise _Invalid(
                f"seq must be {conversation.message_count + 1}: a conversation's messages "
                "come in seq order from 1, without gaps."
            )
        role = record.get("role")
        if role not in ROLES:
            raise _Invalid(f"role must be one of {', '.join(Message.Role.values)}.")
        content = chat_services.clean_content(record.get("content"))
        tool_calls = record.get("tool_calls")
        if tool_calls is not None and not isinstance(tool_calls, list):
            raise _Invalid("tool_calls must be a JSON array or null.")
        client_id = record.get("client_id")
        if client_id is not None:
            try:
                client_id = uuid.UUID(client_id) if isinstance(client_id, str) else None
            except ValueError:
                client_id = None
            if client_id is None:
                raise _Invalid("client_id must be a UUID or null.")
            if (number, client_id) in self.client_ids:
                raise _Invalid("client_id is used twice in this conversation.")
            self.client_ids.add((number, client_id))
        superseded_at = record.get("superseded_at")
        conversation.message_count = seq
        self.messages.append(
            (
                conversation,
                (
                    self.user.pk,
                    seq,
                    role,
                    content,
                    tool_calls,
                    client_id,
                    _timestamp(record, "created_at"),
                    None if superseded_at is None else _timestamp(record, "superseded_at"),
                ),
            )
        )
        if len(self.messages) >= MESSAGES_PER_BATCH:
            self.flush_messages()

    def flush_tasks(self):
        self.stored_messages.wait()
        tasks = [task for task, _, _ in self.tasks]
        Task.objects.bulk_create(tasks, batch_size=INSERTS_PER_QUERY)
        # auto_now(_add) set both timestamps on insert: put the exported ones back.
        for task, created_at, updated_at in self.tasks:
            task.created_at, task.updated_at = created_at, updated_at
        Task.objects.bulk_update(tasks, ["created_at", "updated_at"], batch_size=500)
        self.task_count += len(tasks)
        self.tasks = []

    def flush_conversations(self):
        self.stored_messages.wait()
        Conversation.objects.bulk_create(self.unsaved, batch_size=INSERTS_PER_QUERY)
        self.unsaved = []

    def flush_messages(self):
        if self.unsaved:
            self.flush_conversations()
        # Rows in chat_services.CHECKED_MESSAGE_COLUMNS order, now that every
        # conversation has its id.
        rows = [(conversation.pk, *row) for conversation, row in self.messages]
        self.stored_messages.write(rows)
        self.message_count += len(rows)
        self.messages = []

    def finish(self):
        if self.tasks:
            self.flush_tasks()
        self.flush_messages()
        if self.unsaved:
            self.flush_conversations()
        self.stored_messages.wait()
        chat_services.conversations_set_message_counts(
            {c.pk: c.message_count for c in self.conversations.values() if c.message_count}
        )
        return {
            "tasks": self.task_count,
            "conversations": len(self.conversations),
            "messages": self.message_count,
        }
