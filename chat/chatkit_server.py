"""The ChatKit protocol on our chat turn: the SDK's `ChatKitServer`, subclassed.

`respond` runs the same streamed turn as `POST chat/` with `Accept:
text/event-stream` (`chat.turns`: stored, retry-safe, cancellable), in a thread of
this process, and translates its events into ChatKit's one by one as the turn
writes them (`TurnTranslation`). A ChatKit cancel, the front end dropping the
stream, is our cancel (`cancel_turn`): under ASGI the SDK sees its task cancelled
(`handle_stream_cancelled`); under WSGI the view sees its response closed
(`chat.views.ChatKitView`). Requests are checked before the SDK starts a stream
(`ChatKitServer.process`): another user's thread or item, or a missing one, is the
SDK's `NotFoundError`; unsupported requests and bad messages are 400s; nothing is
changed by a refused request.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace

import orjson
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
    ThreadItemAddedEvent,
    ThreadItemDoneEvent,
    ThreadItemRemovedEvent,
    ThreadItemReplacedEvent,
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
from django.utils import timezone
from pydantic import TypeAdapter

from core.errors import DomainError

from . import services, streams, turns
from .agents.base import requested_calls, tool_results
from .chatkit_store import (
    ATTACHMENTS_NOT_SUPPORTED,
    ChatKitContext,
    DjangoStore,
    NotSupported,
    call_task,
    message_item,
    run_sync,
    step_item_id,
    user_text,
)
from .models import ChatTurn, MessageFeedback, TurnEvent

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


def _message(data):
    """A message of an event's data (`message_data` as JSON) with what `message_item`
    reads; pydantic parses its `created_at`."""
    return SimpleNamespace(
        pk=data["id"],
        seq=data["seq"],
        role=data["role"],
        content=data["content"],
        tool_calls=data["tool_calls"],
        created_at=data["created_at"],
    )


class TurnTranslation:
    """ChatKit's events for a turn's events (`chat.events`), fed one at a time as the
    turn writes them.

    - `turn.started`: its user message is a finished item, unless this request's
      `add_thread_item` stored it (the SDK has sent it already).
    - `message.delta`: the first opens an assistant item, under the id of the step's
      message-to-be (`step_item_id`), with an empty content part; each is a text delta.
    - `tool.call`: the step is a workflow item (one task per call, "loading") and a
      progress update naming the tools; text streamed for that step becomes it
      (`thread.item.replaced`, same id). `tool.result` completes its tasks. The
      workflow is finished when the next step starts or the turn ends.
    - `turn.done` / `turn.cancelled`: the reply's content part and item are finished
      with the stored text (a cancelled turn's reply is the text so far; none if
      nothing was said). `turn.failed`: a partial reply is removed, and the stream
      ends with ChatKit's error event.
    """

    def __init__(self, thread_id, turn, context, skip_user_pk=None):
        self.thread_id = thread_id
        self.turn = turn
        self.context = context
        self.skip_user_pk = skip_user_pk
        self.step = 0
        self.text = None  # the open assistant item being streamed
        self.workflow = None  # (message, item) of the open tool step
        self.ended = False

    def feed(self, name, data) -> Iterator[ThreadStreamEvent]:
        if name == TurnEvent.Name.STARTED:
            message = _message(data["user_message"])
            if message.pk != self.skip_user_pk:
                yield self._done(message_item(message, self.thread_id))
        elif name == TurnEvent.Name.DELTA:
            yield from self._delta(data["delta"])
        elif name == TurnEvent.Name.TOOL_CALL:
            yield from self._tool_call(_message(data["message"]))
        elif name == TurnEvent.Name.TOOL_RESULT:
            if self.workflow is not None:
                yield from _results(self.workflow, _message(data["message"]))
        elif name in (TurnEvent.Name.DONE, TurnEvent.Name.CANCELLED):
            self.ended = self.context.turn_ended = True
            yield from self._close_workflow()
            if data["assistant_message"] is not None:
                yield from self._reply(_message(data["assistant_message"]))
        elif name == TurnEvent.Name.FAILED:
            self.ended = self.context.turn_ended = True
            yield from self._close_workflow()
            if self.text is not None:
                yield ThreadItemRemovedEvent(item_id=self.text.id)
            raise CustomStreamError(data["detail"], allow_retry=data["status"] >= 500)

    def _done(self, item):
        self.context.known_item_ids.add(item.id)
        return ThreadItemDoneEvent(item=item)

    def _close_workflow(self):
        if self.workflow is not None:
            yield self._done(self.workflow[1])
            self.workflow = None

    def _delta(self, delta):
        yield from self._close_workflow()
        if self.text is None:
            item_id = step_item_id(turns.message_key(self.turn, f"step:{self.step}"))
            self.context.streamed_ids.add(item_id)
            self.text = AssistantMessageItem(
                id=item_id, thread_id=self.thread_id, created_at=timezone.now(), content=[]
            )
            yield ThreadItemAddedEvent(item=self.text)
            yield ThreadItemUpdatedEvent(
                item_id=item_id,
                update=AssistantMessageContentPartAdded(
                    content_index=0, content=AssistantMessageContent(text="")
                ),
            )
        if delta:
            yield ThreadItemUpdatedEvent(
                item_id=self.text.id,
                update=AssistantMessageContentPartTextDelta(content_index=0, delta=delta),
            )

    def _tool_call(self, message):
        yield from self._close_workflow()
        item = message_item(message, self.thread_id, {})
        if self.text is not None:
            item.id = self.text.id
            self.text = None
            self.context.known_item_ids.add(item.id)
            yield ThreadItemReplacedEvent(item=item.model_copy(deep=True))
        else:
            yield ThreadItemAddedEvent(item=item.model_copy(deep=True))
        self.workflow = (message, item)
        self.step += 1
        names = ", ".join(dict.fromkeys(call.name for call in requested_calls(message)))
        yield ProgressUpdateEvent(text=f"Calling {names}…")

    def _reply(self, message):
        if self.text is None:
            yield from self._delta(message.content)
        item = message_item(message, self.thread_id)
        item.id, self.text = self.text.id, None
        yield ThreadItemUpdatedEvent(
            item_id=item.id,
            update=AssistantMessageContentPartDone(content_index=0, content=item.content[0]),
        )
        yield self._done(item)


def _results(step, result):
    message, item = step
    for index, call in enumerate(requested_calls(message)):
        if any(call_id == call.id for call_id, *_ in tool_results(result)):
            task = call_task(call, result)
            item.workflow.tasks[index] = task
            yield ThreadItemUpdatedEvent(
                item_id=item.id, update=WorkflowTaskUpdated(task_index=index, task=task)
            )


async def pause_for(follower):
    """Wait for the turn's next write: in the thread when the SDK is driven without an
    event loop (the request's thread is the stream's), in the loop when there is one."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        follower.wait()
        return
    await follower.wait_async()


def cancel_turn(context: ChatKitContext) -> None:
    """Our cancel (`chat.turns.turn_cancel`) of the turn this request runs, unless its
    stream has ended: the turn stores the reply so far and ends `cancelled`."""
    turn, context.turn = context.turn, None
    if turn is not None and not context.turn_ended:
        turns.turn_cancel(owner=context.user, client_id=turn.client_id)


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
            thread = await self.store.load_thread(request.params.thread_id, context)
            if thread.status.type != "active":
                reason = f": {thread.status.reason}" if thread.status.reason else ""
                raise services.ThreadNotActive(
                    f"This thread is {thread.status.type}{reason}. It takes no new messages."
                )
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

    async def respond(
        self,
        thread: ThreadMetadata,
        input_user_message: UserMessageItem | None,
        context: ChatKitContext,
    ) -> AsyncIterator[ThreadStreamEvent]:
        """Run a chat turn for the user's message, streaming its events as it runs.

        The turn is `POST chat/`'s streamed turn: claimed (`turns.turn_claim`), run in
        a thread of this process (`turns.turn_run_in_background`), and followed from
        its stored events (`chat.streams.Follower`), each translated as it comes
        (`TurnTranslation`). A message this request stored is answered by the turn that
        adopts it (same client id). Otherwise this is `threads.retry_after_item`: the
        SDK has superseded the items after the message; the message itself is
        superseded too (a `thread.item.removed`) and sent again as a new message of a
        new turn, since a turn answers a message it stores.
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
            turn = await run_sync(
                turns.turn_claim,
                owner=context.user,
                message=text,
                conversation_id=int(thread.id),
                client_id=client_id,
            )
        except DomainError as exc:
            raise CustomStreamError(str(exc.detail), allow_retry=exc.status_code >= 500) from exc
        context.turn = turn
        if turn.status == ChatTurn.Status.RUNNING:
            await run_sync(turns.turn_run_in_background, turn)
        translation = TurnTranslation(
            thread.id, turn, context, skip_user_pk=stored.pk if stored else None
        )
        follower = streams.Follower(turn, after=0)
        try:
            while not follower.done:
                if not follower.needs_read():
                    await pause_for(follower)
                    continue
                for _, name, data in await run_sync(follower.read_rows):
                    for event in translation.feed(name, orjson.loads(data)):
                        yield event
        finally:
            follower.close()
        context.turn_ended = True
        if not translation.ended:
            raise CustomStreamError("The turn stopped before it finished.", allow_retry=True)

    async def handle_stream_cancelled(self, thread, pending_items, context: ChatKitContext):
        """A ChatKit cancel (the front end stopped the stream: under ASGI the SDK sees
        the request's task cancelled) is our cancel. The turn stores what it said, so
        the SDK's own saving of pending items is not wanted."""
        await run_sync(cancel_turn, context)

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
