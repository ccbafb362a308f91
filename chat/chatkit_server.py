"""The ChatKit protocol on our chat turn: the SDK's `ChatKitServer`, subclassed.

`respond` runs `chat.turns.chat_turn` (stored, retry-safe) and, once it returns,
translates what the turn stored into ChatKit's events with `turn_events`, which
takes the turn's messages one by one so that it can be fed live as they are stored
once turns stream. Requests are checked before the SDK starts a stream
(`ChatKitServer.process`): another user's thread or item, or a missing one, is the
SDK's `NotFoundError`; unsupported requests and bad messages are 400s; nothing is
changed by a refused request.
"""

import logging
from collections.abc import AsyncIterator, Iterable, Iterator

from chatkit.errors import CustomStreamError
from chatkit.server import ChatKitServer, NonStreamingResult, StreamingResult
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageContentPartAdded,
    AssistantMessageContentPartDone,
    AssistantMessageContentPartTextDelta,
    AssistantMessageItem,
    ChatKitReq,
    ItemsFeedbackReq,
    ProgressUpdateEvent,
    StreamOptions,
    ThreadItemAddedEvent,
    ThreadItemDoneEvent,
    ThreadItemRemovedEvent,
    ThreadItemUpdatedEvent,
    ThreadMetadata,
    ThreadsAddUserMessageReq,
    ThreadsCreateReq,
    ThreadsRetryAfterItemReq,
    ThreadStreamEvent,
    UserMessageItem,
    WorkflowTaskUpdated,
    is_streaming_req,
)
from django.db import transaction
from pydantic import TypeAdapter

from core.errors import DomainError

from . import selectors, services, turns
from .agents.base import requested_calls, tool_results
from .chatkit_store import (
    ATTACHMENTS_NOT_SUPPORTED,
    ChatKitContext,
    DjangoStore,
    NotSupported,
    call_task,
    item_id_of,
    message_item,
    run_sync,
    user_text,
)
from .models import Message, MessageFeedback

logger = logging.getLogger(__name__)

REQUEST = TypeAdapter(ChatKitReq)
NOT_SUPPORTED_TYPES = {
    "attachments.create": ATTACHMENTS_NOT_SUPPORTED,
    "attachments.delete": ATTACHMENTS_NOT_SUPPORTED,
    "input.transcribe": "Transcription (input.transcribe) is not supported by this server.",
    "threads.custom_action": "Widget actions are not supported by this server.",
    "threads.sync_custom_action": "Widget actions are not supported by this server.",
    "threads.add_client_tool_output": "Client tools are not supported by this server.",
    "threads.add_structured_input": "Structured input is not supported by this server.",
}
FEEDBACK_KINDS = {"positive": MessageFeedback.Kind.UP, "negative": MessageFeedback.Kind.DOWN}


def turn_events(thread_id: str, messages: Iterable[Message]) -> Iterator[ThreadStreamEvent]:
    """ChatKit's events for a turn's stored messages, in seq order.

    A user message is one finished item. A step that calls tools opens a workflow item
    (each call a task, "loading"), with a progress update naming the tools; each
    `tool` result that follows marks its task complete; the item is finished when the
    next non-tool message (or the end) comes. A reply is added empty, then its text
    arrives as a content part with text deltas, then it is finished. `system`
    messages are not shown.
    """
    step = None  # (message, item) of the open workflow
    for message in messages:
        if message.role == Message.Role.TOOL:
            if step is not None:
                yield from _results(step, message)
            continue
        if step is not None:
            yield ThreadItemDoneEvent(item=step[1])
            step = None
        if message.role == Message.Role.USER:
            yield ThreadItemDoneEvent(item=message_item(message, thread_id))
        elif message.role == Message.Role.ASSISTANT and requested_calls(message):
            step = (message, message_item(message, thread_id, {}))
            yield ThreadItemAddedEvent(item=step[1].model_copy(deep=True))
            names = ", ".join(dict.fromkeys(call.name for call in requested_calls(message)))
            yield ProgressUpdateEvent(text=f"Calling {names}…")
        elif message.role == Message.Role.ASSISTANT:
            yield from _reply(message, thread_id)
    if step is not None:
        yield ThreadItemDoneEvent(item=step[1])


def _results(step, result):
    message, item = step
    for index, call in enumerate(requested_calls(message)):
        if any(call_id == call.id for call_id, *_ in tool_results(result)):
            task = call_task(call, result)
            item.workflow.tasks[index] = task
            yield ThreadItemUpdatedEvent(
                item_id=item.id, update=WorkflowTaskUpdated(task_index=index, task=task)
            )


def _reply(message, thread_id):
    item = message_item(message, thread_id)
    empty = AssistantMessageItem(
        id=item.id, thread_id=thread_id, created_at=item.created_at, content=[]
    )
    yield ThreadItemAddedEvent(item=empty)
    yield ThreadItemUpdatedEvent(
        item_id=item.id,
        update=AssistantMessageContentPartAdded(
            content_index=0, content=AssistantMessageContent(text="")
        ),
    )
    yield ThreadItemUpdatedEvent(
        item_id=item.id,
        update=AssistantMessageContentPartTextDelta(content_index=0, delta=message.content),
    )
    yield ThreadItemUpdatedEvent(
        item_id=item.id,
        update=AssistantMessageContentPartDone(content_index=0, content=item.content[0]),
    )
    yield ThreadItemDoneEvent(item=item)


class TodoChatKitServer(ChatKitServer[ChatKitContext]):
    """Serves ChatKit from `chat/`'s conversations and turns; see the module docstring."""

    def __init__(self):
        super().__init__(store=DjangoStore())

    async def process(self, request, context: ChatKitContext):
        """Checks the request (raising before any stream starts), then lets the SDK
        serve it. Raises pydantic's ValidationError for a body that is not a ChatKit
        request, NotFoundError, or a DomainError (NotSupported, InvalidMessage, ...)."""
        parsed = REQUEST.validate_json(request)
        await self._check(parsed, context)
        # What ChatKitServer.process does after parsing; it builds a new TypeAdapter
        # of the request union on every call (about 20 ms), this module once.
        if is_streaming_req(parsed):
            return StreamingResult(self._process_streaming(parsed, context))
        return NonStreamingResult(await self._process_non_streaming(parsed, context))

    async def _check(self, request, context):
        if request.type in NOT_SUPPORTED_TYPES:
            raise NotSupported(NOT_SUPPORTED_TYPES[request.type])
        if isinstance(request, (ThreadsCreateReq, ThreadsAddUserMessageReq)):
            if request.params.input.attachments:
                raise NotSupported(ATTACHMENTS_NOT_SUPPORTED)
            services.clean_content(user_text(request.params.input.content))
        if isinstance(request, (ThreadsAddUserMessageReq, ThreadsRetryAfterItemReq)):
            await self.store.load_thread(request.params.thread_id, context)
        if isinstance(request, ThreadsRetryAfterItemReq):
            item = await self.store.load_item(
                request.params.thread_id, request.params.item_id, context
            )
            if not isinstance(item, UserMessageItem):
                raise services.InvalidMessage("threads.retry_after_item needs a user message.")
        if isinstance(request, ThreadsCreateReq):
            conversation = await run_sync(services.conversation_create, owner=context.user)
            context.new_thread_id = str(conversation.pk)
        if isinstance(request, ItemsFeedbackReq) and not request.params.item_ids:
            raise services.InvalidMessage("items.feedback needs at least one item id.")

    def get_stream_options(self, thread, context) -> StreamOptions:
        # The turn runs to its end before the first event is sent: nothing to cancel.
        return StreamOptions(allow_cancel=False)

    async def respond(
        self,
        thread: ThreadMetadata,
        input_user_message: UserMessageItem | None,
        context: ChatKitContext,
    ) -> AsyncIterator[ThreadStreamEvent]:
        """Run a chat turn for the user's message and send what it stored.

        A message this request stored is answered by the turn that adopts it (same
        client id). Otherwise this is `threads.retry_after_item`: the SDK has
        superseded the items after the message; the message itself is superseded too
        (a `thread.item.removed`) and sent again as a new message of a new turn, since
        a turn answers a message it stores.
        """
        if input_user_message is None:
            return
        stored = context.appended.get(input_user_message.id)
        if stored is None:
            yield ThreadItemRemovedEvent(item_id=input_user_message.id)
            text, client_id = user_text(input_user_message.content), None
        else:
            text, client_id = stored.content, stored.client_id
        if not thread.title:
            thread.title = " ".join(text.split())[: turns.TITLE_LENGTH]
        try:
            outcome = await run_sync(
                turns.chat_turn,
                owner=context.user,
                message=text,
                conversation_id=int(thread.id),
                client_id=client_id,
            )
        except DomainError as exc:
            raise CustomStreamError(str(exc.detail), allow_retry=exc.status_code >= 500) from exc
        messages = await run_sync(
            selectors.turn_messages,
            outcome.conversation_id,
            first_seq=outcome.user_message.seq,
            last_seq=outcome.assistant_message.seq,
        )
        if stored is not None:
            messages = [m for m in messages if m.pk != stored.pk]
        context.known_item_ids.update(item_id_of(m) for m in messages)
        for event in turn_events(thread.id, messages):
            yield event

    def _add_feedback(self, thread_id, item_ids, kind, context):
        with transaction.atomic():
            conversation = self.store._conversation(thread_id, context)
            messages = [
                self.store._message(thread_id, item, context, conversation) for item in item_ids
            ]
            for message in messages:
                services.feedback_set(message=message, kind=kind)

    async def add_feedback(self, thread_id, item_ids, feedback, context) -> None:
        """Stored per message (a new vote replaces the old); all items must exist."""
        await run_sync(self._add_feedback, thread_id, item_ids, FEEDBACK_KINDS[feedback], context)

    async def transcribe(self, audio_input, context):
        raise NotSupported(NOT_SUPPORTED_TYPES["input.transcribe"])


server = TodoChatKitServer()
