"""The ChatKit SDK's `Store` on our conversations and messages: no second copy.

A thread is one of the caller's conversations (its id is the conversation id as a
decimal string, its title the conversation's title); its items are built from the
conversation's messages, each with the stable id `msg_<message id>`:

- a user message → `UserMessageItem`;
- an assistant reply → `AssistantMessageItem`;
- an assistant step that called tools → one `WorkflowItem`, a `CustomTask` per call
  with the call's result (the `tool` messages that answer it are folded in, not items
  of their own). Shown rather than hidden because the calls change the user's task
  list: a front end should show what was added or completed, and ChatKit drops hidden
  items from every answer anyway;
- `system` and `tool` messages, and messages superseded by a retry, are not items.

Every method is scoped to `context.user` (the request's authenticated user): a
thread or item of another user, or one that does not exist, raises the SDK's
`NotFoundError`, before anything is changed. Reads are keyset walks in
(updated_at, id) and (conversation, seq) order (`chat.selectors`), never OFFSET; the
read-only requests are mostly answered without this store (`chat.chatkit_reads`).
A thread's status is the conversation's `thread_status` (NULL for active). Item ids
are `msg_<message id>`, or `msg_s<client id>` for a step shown while it was streamed
(`step_item_id`): both are looked up. Writes go through `chat.services`. The ORM
is synchronous: each method runs its work with `run_sync`, in the calling thread
when no event loop runs there (the view drives the SDK that way under WSGI,
`chat.views.drive`), else with `sync_to_async`.
"""

import asyncio
import json
import uuid
from dataclasses import dataclass, field

from asgiref.sync import sync_to_async
from chatkit.store import NotFoundError, Store
from chatkit.types import (
    ActiveStatus,
    AssistantMessageContent,
    AssistantMessageItem,
    ClosedStatus,
    CustomSummary,
    CustomTask,
    InferenceOptions,
    LockedStatus,
    Page,
    ThreadMetadata,
    UserMessageItem,
    UserMessageTagContent,
    UserMessageTextContent,
    Workflow,
    WorkflowItem,
)
from django.contrib.auth.base_user import AbstractBaseUser

from core.errors import DomainError

from . import selectors, services
from .agents.base import requested_calls, tool_results
from .models import Message, ThreadStatus

ITEM_PREFIX = "msg_"
STEP_PREFIX = "msg_s"
TASK_CONTENT_LENGTH = 500


class NotSupported(DomainError):
    """A ChatKit request this server does not serve (400)."""

    default_detail = "This ChatKit request is not supported by this server."


ATTACHMENTS_NOT_SUPPORTED = (
    "Attachments are not supported by this server; send the message as text only."
)


@dataclass
class ChatKitContext:
    """What the SDK passes to every Store and server method for one request.

    `user` is the authenticated caller. `new_thread_id` is the conversation made for
    a `threads.create` before the SDK asks for a thread id. `appended` maps the item
    id of a user message stored by this request to its Message; `known_item_ids` are
    items already stored (the SDK asks to store every finished item again).
    `turn` is the `ChatTurn` this request runs, `turn_ended` whether its stream saw
    its last event; `streamed_ids` the ids of steps shown while they were streamed
    (`step_item_id`), which may never be stored (a failed turn's partial reply).
    """

    user: AbstractBaseUser
    new_thread_id: str | None = None
    appended: dict = field(default_factory=dict)
    known_item_ids: set = field(default_factory=set)
    turn: object = None
    turn_ended: bool = False
    streamed_ids: set = field(default_factory=set)


async def run_sync(function, *args, **kwargs):
    """`function(*args, **kwargs)`, right here when no event loop runs in this thread
    (nothing is waited on, so the coroutine never suspends), else on the request's
    thread with `sync_to_async`."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return function(*args, **kwargs)
    return await sync_to_async(function)(*args, **kwargs)


def item_id_of(message: Message) -> str:
    return f"{ITEM_PREFIX}{message.pk}"


def step_item_id(client_id: uuid.UUID) -> str:
    """The id under which a turn's step is streamed before it is stored: its message's
    client id, known from the start (`chat.turns.message_key`)."""
    return f"{STEP_PREFIX}{client_id.hex}"


def message_key(item_id: str) -> dict:
    """The lookup of the message behind an item id: `{"pk": ...}` for `msg_<id>`,
    `{"client_id": ...}` for a streamed step's `msg_s<hex>`; NotFoundError for
    anything else."""
    if isinstance(item_id, str) and item_id.startswith(STEP_PREFIX):
        try:
            return {"client_id": uuid.UUID(hex=item_id[len(STEP_PREFIX) :])}
        except ValueError:
            raise NotFoundError(f"Item {item_id!r} not found.") from None
    if not isinstance(item_id, str) or not item_id.startswith(ITEM_PREFIX):
        raise NotFoundError(f"Item {item_id!r} not found.")
    digits = item_id[len(ITEM_PREFIX) :]
    if not digits.isdigit() or not 0 < int(digits) < 2**63:
        raise NotFoundError(f"Item {item_id!r} not found.")
    return {"pk": int(digits)}


def user_text(content) -> str:
    """The text of a ChatKit user message's content parts (tags by their text)."""
    parts = [
        part.text
        for part in content
        if isinstance(part, (UserMessageTextContent, UserMessageTagContent))
    ]
    return "".join(parts)


def _compact(value) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
    return text if len(text) <= TASK_CONTENT_LENGTH else text[: TASK_CONTENT_LENGTH - 1] + "…"


def task_fields(call, result_entries=None):
    """(title, content, status indicator) of a tool call's workflow task: done once
    its result is stored. `result_entries` are the stored `tool_calls` of the tool
    message that answers it (None while it runs)."""
    content = _compact(call.arguments)
    if result_entries is None:
        return call.name, content, "loading"
    results = [
        entry.get("result")
        for entry in (result_entries if isinstance(result_entries, list) else [])
        if isinstance(entry, dict) and str(entry.get("id", "")) == call.id
    ]
    if results:
        content = f"{content} → {_compact(results[0])}"
    return call.name, content, "complete"


def call_task(call, result_message=None) -> CustomTask:
    """One tool call as a workflow task (`task_fields`)."""
    entries = None if result_message is None else result_message.tool_calls
    title, content, status = task_fields(call, entries)
    return CustomTask(title=title, content=content, status_indicator=status)


def match_results(step: Message, tool_messages) -> dict:
    """{call id: the first tool message after `step` that answers it}."""
    wanted = {call.id for call in requested_calls(step)}
    found = {}
    for message in tool_messages:
        if message.seq <= step.seq:
            continue
        for call_id, _, _ in tool_results(message):
            if call_id in wanted and call_id not in found:
                found[call_id] = message
    return found


def message_item(message: Message, thread_id: str, results: dict | None = None):
    """The ChatKit item of a user or assistant message; `results` maps the call ids of
    a tool step to their stored results (missing ones show as still running)."""
    common = {"id": item_id_of(message), "thread_id": thread_id, "created_at": message.created_at}
    if message.role == Message.Role.USER:
        return UserMessageItem(
            **common,
            content=[UserMessageTextContent(text=message.content)],
            inference_options=InferenceOptions(),
        )
    calls = requested_calls(message)
    if not calls:
        return AssistantMessageItem(
            **common, content=[AssistantMessageContent(text=message.content)]
        )
    results = results or {}
    return WorkflowItem(
        **common,
        workflow=Workflow(
            type="custom",
            tasks=[call_task(call, results.get(call.id)) for call in calls],
            summary=CustomSummary(title=message.content),
        ),
    )


def thread_status(conversation):
    """ChatKit's status of a conversation's thread (`Conversation.thread_status`)."""
    status = conversation.thread_status
    if status is None:
        return ActiveStatus()
    kind = LockedStatus if status == ThreadStatus.LOCKED else ClosedStatus
    return kind(reason=conversation.thread_status_reason)


def thread_metadata(conversation) -> ThreadMetadata:
    return ThreadMetadata(
        id=str(conversation.pk),
        title=conversation.title or None,
        created_at=conversation.created_at,
        status=thread_status(conversation),
    )


class DjangoStore(Store[ChatKitContext]):
    """The SDK's Store on `chat.models`; see the module docstring."""

    def generate_thread_id(self, context: ChatKitContext) -> str:
        # The conversation is made before the SDK asks (ChatKitServer.process), so the
        # thread's id is its id from the first event on.
        if context.new_thread_id is None:
            raise NotSupported("A thread is made by threads.create only.")
        return context.new_thread_id

    # --- threads ---------------------------------------------------------------------

    def _conversation(self, thread_id, context):
        try:
            return services.conversation_get(owner=context.user, conversation_id=thread_id)
        except services.ConversationNotFound:
            raise NotFoundError(f"Thread {thread_id!r} not found.") from None

    async def load_thread(self, thread_id: str, context: ChatKitContext) -> ThreadMetadata:
        return thread_metadata(await run_sync(self._conversation, thread_id, context))

    def _save_thread(self, thread, context):
        conversation = self._conversation(thread.id, context)
        title = thread.title or ""
        if conversation.title != title:
            services.conversation_update(conversation=conversation, title=title)
        status = thread.status
        services.conversation_set_thread_status(
            conversation=conversation,
            status=None if status.type == "active" else status.type,
            reason=getattr(status, "reason", None),
        )

    async def save_thread(self, thread: ThreadMetadata, context: ChatKitContext) -> None:
        """Stores the title and the status (the conversation's `title` and
        `thread_status`, each written only when it changed)."""
        await run_sync(self._save_thread, thread, context)

    def _load_threads(self, limit, after, order, context):
        limit = max(1, min(int(limit), 100))
        cursor = self._conversation(after, context) if after else None
        rows = selectors.thread_page(
            context.user, limit=limit, after=cursor, descending=order != "asc"
        )
        data = [thread_metadata(row) for row in rows[:limit]]
        has_more = len(rows) > limit
        return Page(data=data, has_more=has_more, after=data[-1].id if data else None)

    async def load_threads(self, limit, after, order, context: ChatKitContext):
        """Most recent activity first for "desc"; `after` is the last thread's id."""
        return await run_sync(self._load_threads, limit, after, order, context)

    def _delete_thread(self, thread_id, context):
        if not (isinstance(thread_id, str) and thread_id.isdigit()):
            raise NotFoundError(f"Thread {thread_id!r} not found.")
        try:
            services.conversation_delete_owned(owner=context.user, conversation_id=int(thread_id))
        except services.ConversationNotFound:
            raise NotFoundError(f"Thread {thread_id!r} not found.") from None

    async def delete_thread(self, thread_id: str, context: ChatKitContext) -> None:
        await run_sync(self._delete_thread, thread_id, context)

    # --- items -----------------------------------------------------------------------

    def _items(self, conversation_id, thread_id, messages):
        steps = [m for m in messages if m.tool_calls and m.role == Message.Role.ASSISTANT]
        tool_messages = selectors.step_results(conversation_id, steps)
        step_pks = {m.pk for m in steps}
        return [
            message_item(
                m, thread_id, match_results(m, tool_messages) if m.pk in step_pks else None
            )
            for m in messages
        ]

    def _message(self, thread_id, item_id, context, conversation=None):
        """The user's message behind `item_id` in `thread_id`, if it is a shown item."""
        conversation = conversation or self._conversation(thread_id, context)
        message = (
            Message.objects.filter(
                conversation_id=conversation.pk,
                **message_key(item_id),
                role__in=selectors.CHATKIT_ITEM_ROLES,
                superseded_at__isnull=True,
            )
            .order_by()
            .first()
        )
        if message is None:
            raise NotFoundError(f"Item {item_id!r} not found.")
        return message

    def _load_thread_items(self, thread_id, after, limit, order, context):
        conversation = self._conversation(thread_id, context)
        limit = max(1, min(int(limit), 1000))
        after_seq = self._message(thread_id, after, context, conversation).seq if after else None
        rows = selectors.item_messages(
            conversation.pk, limit=limit, after_seq=after_seq, descending=order == "desc"
        )
        page = rows[:limit]
        data = self._items(conversation.pk, thread_id, page)
        return Page(data=data, has_more=len(rows) > limit, after=data[-1].id if data else None)

    async def load_thread_items(self, thread_id, after, limit, order, context):
        """`after` is the last item's id; "asc" is oldest first."""
        return await run_sync(self._load_thread_items, thread_id, after, limit, order, context)

    def _load_item(self, thread_id, item_id, context):
        message = self._message(thread_id, item_id, context)
        return self._items(message.conversation_id, thread_id, [message])[0]

    async def load_item(self, thread_id: str, item_id: str, context: ChatKitContext):
        return await run_sync(self._load_item, thread_id, item_id, context)

    def _add_thread_item(self, thread_id, item, context):
        if item.id in context.known_item_ids:
            return
        if not isinstance(item, UserMessageItem):
            # Everything else a turn shows is stored by the turn itself (chat.turns);
            # the SDK's own notes (a cancelled stream) have no place in the log.
            return
        if item.attachments:
            raise NotSupported(ATTACHMENTS_NOT_SUPPORTED)
        conversation = self._conversation(thread_id, context)
        message, _ = services.message_append(
            owner=context.user,
            conversation_id=conversation.pk,
            role=Message.Role.USER,
            content=user_text(item.content),
            client_id=uuid.uuid4(),
        )
        # The SDK sends this very object in its next event: give it its stored id.
        item.id = item_id_of(message)
        context.appended[item.id] = message
        context.known_item_ids.add(item.id)

    async def add_thread_item(self, thread_id: str, item, context: ChatKitContext) -> None:
        """Stores a new user message (the turn stores the rest); a no-op for items
        already stored."""
        await run_sync(self._add_thread_item, thread_id, item, context)

    async def save_item(self, thread_id: str, item, context: ChatKitContext) -> None:
        """Messages are append-only: an item is never rewritten (it must exist)."""
        if item.id not in context.known_item_ids:
            await self.load_item(thread_id, item.id, context)

    def _delete_thread_item(self, thread_id, item_id, context):
        if item_id in context.streamed_ids:
            return  # a step shown while streamed and never stored (a failed turn's)
        message = self._message(thread_id, item_id, context)
        ids = [message.pk]
        if requested_calls(message):
            tool_messages = selectors.step_results(message.conversation_id, [message])
            ids += [m.pk for m in match_results(message, tool_messages).values()]
        services.messages_supersede(
            owner=context.user, conversation_id=message.conversation_id, message_ids=ids
        )

    async def delete_thread_item(self, thread_id: str, item_id: str, context) -> None:
        """Marks the message (and a tool step's results) superseded: it leaves the
        thread's items and the agent's history and stays in the REST log."""
        await run_sync(self._delete_thread_item, thread_id, item_id, context)

    # --- attachments: not supported ---------------------------------------------------

    async def save_attachment(self, attachment, context) -> None:
        raise NotSupported(ATTACHMENTS_NOT_SUPPORTED)

    async def load_attachment(self, attachment_id, context):
        raise NotSupported(ATTACHMENTS_NOT_SUPPORTED)

    async def delete_attachment(self, attachment_id, context) -> None:
        raise NotSupported(ATTACHMENTS_NOT_SUPPORTED)
