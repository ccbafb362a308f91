"""The chat turn (POST /api/v1/chat/): store the user's message, run the agent, store
every step, answer. Stateless and safe to retry.

A turn is a `ChatTurn` row and the messages it stores:

1. Claim (one short transaction). A new turn stores the user's message and the
   turn row, status `running` with a lease, together. A `client_id` that already
   started one of the owner's turns finds that turn under its row lock instead:
   `succeeded` → its stored outcome; `running` with a live lease → `TurnInProgress`
   (409); `failed`, or a lease that expired because its process died → this request
   takes it over (attempts + 1, a new lease). Two requests starting the same new
   turn at once collide on the unique (owner, client_id) and the loser looks again.
2. Run (no transaction open while the agent thinks). The agent is asked for one
   step at a time. A step that calls tools (an assistant message with
   `tool_calls`) is stored with its first call's result: one short transaction
   locks the turn's row, stores the step, runs the tool and stores the result (a
   `tool` message); each further call runs in a transaction of its own the same
   way. A tool's effect and its stored result commit together or not at all, and
   a result that a racing try stored first undoes this try's call (its client id
   is unique, below). A reply is stored and the turn marked
   `succeeded` in one transaction. At most `CHAT_MAX_TOOL_ROUNDS` steps call
   tools; the agent has `CHAT_AGENT_TIMEOUT` seconds for the whole turn.
3. Every message a turn stores has a client id derived from the turn's `key` and
   its place in the turn ("step:2", "result:1:0"), so it can be stored only once
   and a retry finds exactly this turn's steps. A retry replays the stored steps,
   runs any stored call that has no result yet, and asks the agent only for what
   is missing: no tool call runs twice.

On failure the turn is marked `failed` and the error (`AgentFailed` 502,
`AgentTimeout`/`AgentUnavailable` 503) propagates; what was stored stays (the
user's message, completed tool calls); errors are never stored as messages.

4. Events (`chat.events`). Every try writes the turn's events as it goes, in the
   transactions that store what they describe: `turn.started` with the claim,
   `message.delta`s as the model speaks (coalesced), `tool.call` with a step,
   `tool.result` with its result, and `turn.done` / `turn.failed` /
   `turn.cancelled` with the turn's final status. A try that takes a failed turn
   over replaces its events (they are numbered from 1 again) and sends the
   stored steps it replays as events too. Any process streams them
   (`chat.streams`).
5. Cancel. `turn_cancel` records the request on the turn's row. The run sees it
   before a tool call starts (under the turn's row lock, so no tool call starts
   after a cancel was answered), when it would mark the turn succeeded (the same
   UPDATE), and before asking the agent, between the model's deltas and while
   the model says nothing (at most every `CANCEL_CHECK_SECONDS`: a streaming
   agent is asked in a thread of its own, `_ask_while_watching`). It then stores
   the reply so far, if any, and marks the turn `cancelled`. A turn whose process
   died (lease expired) is marked cancelled by the cancel itself.
"""

import inspect
import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Max, Q
from django.utils import timezone

from core.errors import Conflict, NotFound, Unprocessable
from core.timezones import user_timezone
from tasks import tools

from . import services
from .agents import Agent, AgentFailed, AgentTimeout, AgentUnavailable, get_agent
from .agents.base import TurnContext, requested_calls, tool_results
from .events import EventLog, ReplyText, as_json, fit
from .models import ChatTurn, Message, TurnEvent
from .serializers import message_data

logger = logging.getLogger(__name__)

# A running turn's lease outlives its agent's time budget by this much.
LEASE_MARGIN = timedelta(seconds=30)
# Calls beyond this many in one step are dropped before they are stored.
MAX_CALLS_PER_STEP = 8
TITLE_LENGTH = 80
# A running turn looks for a cancel request at most this often between deltas.
CANCEL_CHECK_SECONDS = 0.5


class TurnInProgress(Conflict):
    default_detail = (
        "A chat turn with this client_id is still running; retry in a few seconds to get "
        "its answer."
    )


class TurnNotFound(NotFound):
    default_detail = "No such chat turn."


class TurnCancelled(Exception):
    """Raised inside a run when its turn's cancel request is seen."""


class TurnClientIdReused(Unprocessable):
    default_detail = (
        "This client_id already started a chat turn with a different message or "
        "conversation; use a new client_id for a new message."
    )


@dataclass(frozen=True)
class TurnOutcome:
    """What a finished turn answers: the same on the first try and on every retry."""

    conversation_id: int
    user_message: Message
    assistant_message: Message | None
    tool_calls: list = field(default_factory=list)
    status: str = ChatTurn.Status.SUCCEEDED


def chat_turn(
    *,
    owner: AbstractBaseUser,
    message: str,
    conversation_id: int | None = None,
    client_id: uuid.UUID | None = None,
    agent: Agent | None = None,
) -> TurnOutcome:
    """Run (or resume, or replay) one chat turn of `owner`; returns a `TurnOutcome`.

    Without `conversation_id` a new conversation is started. Raises
    `InvalidMessage` (400) for a bad message, `ConversationNotFound` (404),
    `TurnInProgress` or `ConversationArchived` (409), `TurnClientIdReused` (422),
    `AgentFailed` (502), `AgentTimeout` or `AgentUnavailable` (503). Call outside any
    transaction.
    """
    turn = turn_claim(
        owner=owner, message=message, conversation_id=conversation_id, client_id=client_id
    )
    if turn.status == ChatTurn.Status.RUNNING:
        return turn_run(turn, agent)
    return turn_outcome(turn)


def turn_claim(
    *,
    owner: AbstractBaseUser,
    message: str,
    conversation_id: int | None = None,
    client_id: uuid.UUID | None = None,
) -> ChatTurn:
    """Store the user's message and claim the turn (step 1); returns the `ChatTurn`.

    A turn returned `running` is this caller's to run with `turn_run` (its
    `turn.started` event is stored); a `succeeded` or `cancelled` one is finished.
    Raises what `chat_turn` raises before the agent runs (400, 404, 409, 422).
    """
    content = services.clean_content(message)
    turn = _claim(
        owner=owner, content=content, conversation_id=conversation_id, client_id=client_id
    )
    turn.owner = owner
    return turn


def turn_run(turn: ChatTurn, agent: Agent | None = None) -> TurnOutcome:
    """Run a turn claimed by `turn_claim` to its end; returns its `TurnOutcome`.

    Raises `AgentFailed`, `AgentTimeout` or `AgentUnavailable` after marking the
    turn failed. A cancelled turn returns its outcome (status `cancelled`).
    """
    return _run(turn, agent)


def turn_run_in_background(turn: ChatTurn) -> threading.Thread:
    """Run a claimed turn in a thread of this process, independent of any request.

    The request that started it may stream its events or go away: the turn runs
    to its end either way (its outcome is in its events and messages).
    """

    def run():
        try:
            _run(turn, None)
        except Exception:  # recorded on the turn (failed) and in its events
            logger.info("chat turn %s ended with an error", turn.pk, exc_info=True)
        finally:
            connection.close()  # this thread's own; nothing else would close it

    thread = threading.Thread(target=run, name=f"chat-turn-{turn.pk}", daemon=True)
    thread.start()
    return thread


def turn_get(*, owner: AbstractBaseUser, client_id) -> ChatTurn:
    """The caller's turn started with `client_id`; `TurnNotFound` (404) otherwise."""
    turn = ChatTurn.objects.filter(owner=owner, client_id=client_id).first()
    if turn is None:
        raise TurnNotFound()
    return turn


def turn_status(turn: ChatTurn) -> str:
    """The status the API shows: a running turn whose lease expired has failed."""
    if turn.status == ChatTurn.Status.RUNNING and (
        turn.lease_expires_at is None or turn.lease_expires_at <= timezone.now()
    ):
        return ChatTurn.Status.FAILED
    return turn.status


def turn_cancel(*, owner: AbstractBaseUser, client_id) -> ChatTurn:
    """Ask the caller's running turn to stop; returns the turn (`TurnNotFound` if none).

    A finished turn is left as it is. A running turn whose process is alive stops
    within `CANCEL_CHECK_SECONDS` (a streaming agent's, even while its model is
    silent; another's, at its next step); one whose lease has
    expired (its process died) is marked cancelled here, with its event.
    """
    with transaction.atomic():
        turn = (
            ChatTurn.objects.select_for_update(of=("self",))
            .filter(owner=owner, client_id=client_id)
            .first()
        )
        if turn is None:
            raise TurnNotFound()
        if turn.status != ChatTurn.Status.RUNNING:
            return turn
        now = timezone.now()
        turn.cancel_requested_at = turn.cancel_requested_at or now
        turn.updated_at = now
        fields = ["cancel_requested_at", "updated_at"]
        if turn.lease_expires_at is None or turn.lease_expires_at <= now:
            turn.status = ChatTurn.Status.CANCELLED
            turn.lease_expires_at = None
            fields += ["status", "lease_expires_at"]
        turn.save(update_fields=fields)
        if turn.status == ChatTurn.Status.CANCELLED:
            last = TurnEvent.objects.filter(turn=turn).aggregate(last=Max("seq"))["last"]
            turn.owner = owner
            events = EventLog(turn, next_seq=(last or 0) + 1)
            events.add(TurnEvent.Name.CANCELLED, outcome_data(turn_outcome(turn)))
    return turn


def message_key(turn: ChatTurn, name: str) -> uuid.UUID:
    """The client id of the message `name` ("step:0", "result:0:1") of `turn`."""
    return uuid.uuid5(turn.key, name)


def _rounds():
    return max(0, settings.CHAT_MAX_TOOL_ROUNDS)


def _lease():
    return timedelta(seconds=settings.CHAT_AGENT_TIMEOUT) + LEASE_MARGIN


# --- 1. Claim -----------------------------------------------------------------------


def _claim(*, owner, content, conversation_id, client_id):
    if client_id is not None and not isinstance(client_id, uuid.UUID):
        try:
            client_id = uuid.UUID(str(client_id))
        except ValueError:
            raise services.InvalidMessage("client_id must be a UUID.") from None
    for _ in range(3):
        try:
            with transaction.atomic():
                turn = _locked_turn(owner, client_id) if client_id else None
                if turn is not None:
                    return _take_over(turn, content, conversation_id)
                return _start(owner, content, conversation_id, client_id)
        except IntegrityError:
            if client_id is None:
                raise
            # A request with the same client_id started the turn first: look again.
    raise TurnInProgress()


def _locked_turn(owner, client_id):
    return (
        ChatTurn.objects.select_for_update(of=("self",))
        # Not the assistant message: a row re-read after waiting for this lock comes
        # with the joined rows of the old snapshot (PostgreSQL's READ COMMITTED).
        .select_related("user_message")
        .filter(owner=owner, client_id=client_id)
        .first()
    )


def _take_over(turn, content, conversation_id):
    """Call holding the turn's row lock: the turn to answer with, or to run now."""
    if turn.user_message.content != content or (
        conversation_id is not None and str(conversation_id) != str(turn.conversation_id)
    ):
        raise TurnClientIdReused()
    if turn.status in (ChatTurn.Status.SUCCEEDED, ChatTurn.Status.CANCELLED):
        return turn
    now = timezone.now()
    lease_alive = turn.lease_expires_at is not None and turn.lease_expires_at > now
    if turn.status == ChatTurn.Status.RUNNING and lease_alive:
        raise TurnInProgress()
    turn.status = ChatTurn.Status.RUNNING
    turn.attempts += 1
    turn.lease_expires_at = now + _lease()
    turn.updated_at = now
    turn.save(update_fields=["status", "attempts", "lease_expires_at", "updated_at"])
    # This try's events replace the last one's.
    TurnEvent.objects.filter(turn=turn).delete()
    _started(turn, turn.user_message)
    return turn


def _start(owner, content, conversation_id, client_id):
    if conversation_id is None:
        title = " ".join(content.split())[:TITLE_LENGTH]
        conversation_id = services.conversation_create(owner=owner, title=title).pk
    user_message, _ = services.message_append(
        owner=owner,
        conversation_id=conversation_id,
        role=Message.Role.USER,
        content=content,
        client_id=client_id,
        refuse_archived=True,
    )
    now = timezone.now()
    turn = ChatTurn.objects.create(
        owner=owner,
        conversation_id=user_message.conversation_id,
        key=uuid.uuid4(),
        # A turn started without a client_id gets one, to be found by (API.md).
        client_id=client_id or uuid.uuid4(),
        user_message=user_message,
        status=ChatTurn.Status.RUNNING,
        lease_expires_at=now + _lease(),
        created_at=now,
        updated_at=now,
    )
    _started(turn, user_message)
    return turn


def _started(turn, user_message):
    """Write a try's first event; call in the claim's transaction."""
    EventLog(turn, next_seq=1).add(
        TurnEvent.Name.STARTED,
        as_json(
            {
                "client_id": turn.client_id,
                "conversation_id": turn.conversation_id,
                "user_message": message_data(user_message),
            }
        ),
    )


# --- 2. Run ---


@dataclass
class TurnState:
    """The history the agent sees, and this turn's stored steps and results."""

    history: list
    steps: dict
    results: dict

    def call_ids(self):
        return {call.id for m in self.steps.values() for call in requested_calls(m)}


def _keys(turn):
    """Every client id this turn can store, mapped to ("step", i, None) / ("result", i, j)."""
    rounds = _rounds()
    keys = {message_key(turn, f"step:{i}"): ("step", i, None) for i in range(rounds + 1)}
    for i in range(rounds):
        for j in range(MAX_CALLS_PER_STEP):
            keys[message_key(turn, f"result:{i}:{j}")] = ("result", i, j)
    return keys


def _load(turn):
    """The window of history up to the user's message, and this turn's steps: one query."""
    keys = _keys(turn)
    user_seq = turn.user_message.seq
    rows = Message.objects.filter(conversation_id=turn.conversation_id).filter(
        Q(seq__gte=user_seq - settings.CHAT_HISTORY_WINDOW, seq__lte=user_seq)
        | Q(client_id__in=list(keys))
    )
    state = TurnState(history=[], steps={}, results={})
    for message in rows.order_by("seq"):
        kind, i, j = keys.get(message.client_id, (None, None, None))
        if kind == "step":
            state.steps[i] = message
        elif kind == "result":
            state.results[(i, j)] = message
        elif message.seq <= user_seq and message.superseded_at is None:
            # Superseded by a ChatKit retry: kept in the log, not in the history.
            state.history.append(message)
    return state


class Run:
    """One try of a turn: the agent, the events it writes, the cancel checks."""

    def __init__(self, turn, agent):
        self.turn = turn
        self.agent = agent
        self.events = EventLog(turn, next_seq=2)
        self.deadline = time.monotonic() + settings.CHAT_AGENT_TIMEOUT
        self.checked_at = time.monotonic()
        self.index = 0
        self.reply = ReplyText()
        self.context = turn_context(turn.owner)

    def check_cancel(self, *, now=False):
        """Raise `TurnCancelled` if the turn's cancel was requested (throttled unless `now`)."""
        if not now and time.monotonic() - self.checked_at < CANCEL_CHECK_SECONDS:
            return
        self.checked_at = time.monotonic()
        if ChatTurn.objects.filter(pk=self.turn.pk, cancel_requested_at__isnull=False).exists():
            raise TurnCancelled()

    def on_text(self, piece):
        """The agent's callback for each piece of its text (or "" while it works)."""
        self.events.delta(self.reply.add(piece))
        self.check_cancel()


def turn_context(owner):
    """The agent's clock and the owner's time zone. `settings.CHAT_NOW` (tests only)
    pins the clock."""
    return TurnContext(now=settings.CHAT_NOW or timezone.now(), zone=user_timezone(owner))


def _run(turn, agent):
    run = Run(turn, None)
    run.events.start()
    try:
        run.agent = agent or get_agent()
        return _advance(run)
    except TurnCancelled:
        return _cancelled(run)
    except BaseException as exc:
        _mark_failed(run, exc)
        raise
    finally:
        run.events.stop()


def _advance(run):
    turn = run.turn
    state = _load(turn)
    rounds = _rounds()
    for index in range(rounds + 1):
        run.index, run.reply = index, ReplyText()
        message = state.steps.get(index)
        sent = {}  # results stored and sent with their step, by call
        if message is None:
            step = _ask(run, state.history, final=index >= rounds)
            if step.is_reply:
                with transaction.atomic():
                    message = _store_step(turn, index, step, used_ids=state.call_ids())
                    if not message.tool_calls:
                        return _finish(run, state, message)
                    run.events.add(TurnEvent.Name.TOOL_CALL, _message_event(message))
            else:
                message, sent = _store_calls(run, state, index, step)
                if not message.tool_calls:  # a racing try stored a reply at this step
                    with transaction.atomic():
                        return _finish(run, state, message)
        elif not message.tool_calls:
            with transaction.atomic():
                return _finish(run, state, message)
        else:
            run.events.add(TurnEvent.Name.TOOL_CALL, _message_event(message))
        state.steps[index] = message
        state.history.append(message)
        for j, call in enumerate(requested_calls(message)):
            result = sent.get(j) or state.results.get((index, j))
            if result is None:
                result = _execute(run, index, j, call)
            elif j not in sent:
                run.events.add(TurnEvent.Name.TOOL_RESULT, _message_event(result))
            state.results[(index, j)] = result
            state.history.append(result)
    raise AgentFailed(f"The assistant did not finish within {rounds} rounds of tool calls.")


def _message_event(message):
    return {"message": as_json(message_data(message))}


def _streams(agent):
    """Whether `agent.next_step` takes `on_text` (agents that do not are sent whole)."""
    try:
        return "on_text" in inspect.signature(agent.next_step).parameters
    except (TypeError, ValueError):
        return False


def _ask(run, history, *, final):
    """The agent's next step, checked; no transaction is open here."""
    agent = run.agent
    run.check_cancel()
    remaining = run.deadline - time.monotonic()
    if remaining <= 0:
        raise AgentTimeout()
    streams = _streams(agent)
    ask = _ask_while_watching if streams else _ask_directly
    try:
        step = ask(
            run,
            history=list(history),
            tools=list(tools.TOOLS.values()),
            final=final,
            timeout=remaining,
            context=run.context,
        )
    except (AgentFailed, AgentTimeout, AgentUnavailable, TurnCancelled):
        raise
    except Exception as exc:
        logger.exception("chat agent %s crashed", type(agent).__name__)
        raise AgentFailed() from exc
    if time.monotonic() > run.deadline:
        raise AgentTimeout()
    if final and not step.is_reply:
        raise AgentFailed(f"The assistant did not finish within {_rounds()} rounds of tool calls.")
    if step.is_reply and not step.text.strip():
        raise AgentFailed("The assistant returned an empty answer.")
    if step.is_reply and not streams:
        run.events.delta(run.reply.add(step.text))
    return step


def _ask_directly(run, **question):
    return run.agent.next_step(**question)


_SAID_ALL = object()


def _ask_while_watching(run, **question):
    """A streaming agent's next step, asked in a thread of its own while this one
    writes its text and watches for a cancel.

    A model may say nothing for seconds (thinking, or a slow first token), and its
    agent blocks in a read meanwhile: asked here, the wait is this thread's, which
    asks the database for a cancel every `CANCEL_CHECK_SECONDS` of silence, so a
    cancel stops the turn within that even then. The agent's thread only queues
    its pieces (it touches no database: the pieces are written here, on this
    thread's connection); once this thread gives up, the agent's next piece raises
    `TurnCancelled` in it, which ends the model's stream, and its answer is dropped.
    """
    pieces = queue.SimpleQueue()
    abandoned = threading.Event()
    answer = {}

    def on_text(piece):
        if abandoned.is_set():
            raise TurnCancelled()
        pieces.put(piece)

    def ask():
        try:
            answer["step"] = run.agent.next_step(**question, on_text=on_text)
        except BaseException as exc:  # re-raised in the turn's thread
            answer["error"] = exc
        finally:
            pieces.put(_SAID_ALL)

    threading.Thread(target=ask, name=f"chat-agent-{run.turn.pk}", daemon=True).start()
    try:
        while (piece := _next_piece(run, pieces)) is not _SAID_ALL:
            run.on_text(piece)
    except BaseException:
        abandoned.set()
        raise
    if "error" in answer:
        raise answer["error"]
    return answer["step"]


def _next_piece(run, pieces):
    """The agent's next piece of text (or `_SAID_ALL`), checking for a cancel and the
    turn's deadline while it is silent."""
    while True:
        try:
            return pieces.get(timeout=CANCEL_CHECK_SECONDS)
        except queue.Empty:
            run.check_cancel(now=True)
            if time.monotonic() > run.deadline:
                raise AgentTimeout() from None


def _store_step(turn, index, step, *, used_ids):
    """Store the agent's step (or adopt the one a racing try stored under its key)."""
    if step.is_reply:
        return _append(turn, f"step:{index}", role="assistant", content=fit(step.text.strip()))
    calls = []
    for j, call in enumerate(step.tool_calls[:MAX_CALLS_PER_STEP]):
        call_id = call.id[:64]
        if not call_id or call_id in used_ids:
            call_id = f"call_{index}_{j}"
        used_ids.add(call_id)
        calls.append({"id": call_id, "name": call.name[:64], "arguments": call.arguments})
    names = ", ".join(dict.fromkeys(c["name"] for c in calls))
    content = step.text.strip() or f"Calling {names}."
    return _append(turn, f"step:{index}", role="assistant", content=fit(content), tool_calls=calls)


def _append(turn, name, *, role, content, tool_calls=None):
    client_id = message_key(turn, name)
    try:
        message, _ = services.message_append(
            owner=turn.owner,
            conversation_id=turn.conversation_id,
            role=role,
            content=content,
            tool_calls=tool_calls,
            client_id=client_id,
        )
    except services.ClientIdReused:
        # Another try of this turn stored this step first (its lease had expired).
        message = Message.objects.get(conversation_id=turn.conversation_id, client_id=client_id)
    return message


class _StoredElsewhere(Exception):
    """A racing try of the turn stored this result first: raised to undo, with the
    transaction, what this try's tool call did."""


def _store_calls(run, state, index, step):
    """Store a step that calls tools and run its first call, in one transaction:
    the step, the call's effect and its result commit together, as in `_execute`.

    Returns the stored step (a racing try's, if it stored this step first) and
    `{0: result}` for the call it ran, both sent as events; or the step and `{}`
    if the stored step is a reply.
    """
    turn = run.turn
    try:
        with transaction.atomic():
            _lock_for_call(turn)
            message = _store_step(turn, index, step, used_ids=state.call_ids())
            calls = requested_calls(message)
            if not calls:
                return message, {}
            result = _run_call(turn, index, 0, calls[0])
            return _sent_with_its_result(run, message, result)
    except _StoredElsewhere:
        message = _stored(turn, f"step:{index}")
        return _sent_with_its_result(run, message, _stored(turn, f"result:{index}:0"))


def _sent_with_its_result(run, step, result):
    """Write `tool.call` and `tool.result` in one INSERT; `_store_calls`' answer."""
    run.events.add(
        TurnEvent.Name.TOOL_CALL,
        _message_event(step),
        (TurnEvent.Name.TOOL_RESULT, _message_event(result)),
    )
    return step, {0: result}


def _execute(run, index, j, call):
    """Run one stored call and store its result, in one transaction: at most once."""
    turn = run.turn
    try:
        with transaction.atomic():
            _lock_for_call(turn)
            result = _run_call(turn, index, j, call)
            run.events.add(TurnEvent.Name.TOOL_RESULT, _message_event(result))
            return result
    except _StoredElsewhere:
        result = _stored(turn, f"result:{index}:{j}")
        run.events.add(TurnEvent.Name.TOOL_RESULT, _message_event(result))
        return result


def _lock_for_call(turn):
    """Take the turn's row lock before a tool call runs; call inside the call's
    transaction.

    Two tries of the turn run a call one after the other (the second finds the
    result stored, `_run_call`), a cancel answered before this point is seen here
    (`TurnCancelled`), and one that comes later waits until the result is stored.
    A turn whose conversation was deleted is gone with it (`ConversationNotFound`).
    """
    cancel = list(
        ChatTurn.objects.select_for_update()
        .filter(pk=turn.pk)
        .values_list("cancel_requested_at", flat=True)
    )
    if not cancel:
        raise services.ConversationNotFound()
    if cancel[0] is not None:
        raise TurnCancelled()


def _run_call(turn, index, j, call):
    """Run a call and store its result; call holding `_lock_for_call`'s lock.

    The result's client id is unique in the conversation: if a racing try stored
    it first (it held the lock before us), nothing is stored and `_StoredElsewhere`
    undoes, with the transaction, what the tool just did. Asking first would cost
    a read on every call for a race that is rare.
    """
    result = tools.call_tool(owner=turn.owner, name=call.name, arguments=call.arguments)
    try:
        stored, created = services.message_append(
            owner=turn.owner,
            conversation_id=turn.conversation_id,
            role=Message.Role.TOOL,
            content=tools.encode(result),
            tool_calls=[{"id": call.id, "name": call.name, "result": result}],
            client_id=message_key(turn, f"result:{index}:{j}"),
        )
    except services.ClientIdReused:
        created = False
    if not created:
        raise _StoredElsewhere()
    return stored


def _stored(turn, name):
    """The message `name` ("step:0", "result:0:1") of `turn`, stored by some try."""
    return Message.objects.get(
        conversation_id=turn.conversation_id, client_id=message_key(turn, name)
    )


def _finish(run, state, reply):
    """Mark the turn succeeded with `reply`, or cancelled with it if a cancel came first.

    Call inside the transaction that stored `reply`.
    """
    turn = run.turn
    run.events.delta(run.reply.rest(reply.content))
    now = timezone.now()
    succeeded = ChatTurn.objects.filter(pk=turn.pk, cancel_requested_at__isnull=True).update(
        status=ChatTurn.Status.SUCCEEDED,
        assistant_message=reply,
        lease_expires_at=None,
        error="",
        updated_at=now,
    )
    status = ChatTurn.Status.SUCCEEDED if succeeded else ChatTurn.Status.CANCELLED
    if not succeeded:
        _mark_cancelled(turn, reply, now)
    turn.status = status
    turn.assistant_message = reply
    turn.lease_expires_at = None
    # Built from the messages as stored (read by `_load`, or returned by the append
    # with their tool data as jsonb orders it): the first answer is byte for byte
    # what a retry answers from `turn_outcome`.
    outcome = _outcome(turn, {**state.steps, run.index: reply}, state.results, reply)
    name = TurnEvent.Name.DONE if succeeded else TurnEvent.Name.CANCELLED
    run.events.add(name, outcome_data(outcome))
    return outcome


def _mark_cancelled(turn, reply, now):
    ChatTurn.objects.filter(pk=turn.pk).update(
        status=ChatTurn.Status.CANCELLED,
        assistant_message=reply,
        lease_expires_at=None,
        updated_at=now,
    )


def _cancelled(run):
    """End a cancelled run: store the reply so far (if any) and mark the turn cancelled."""
    turn = run.turn
    text = run.reply.final()
    with transaction.atomic():
        reply = None
        if text:
            reply = _append(turn, f"step:{run.index}", role="assistant", content=text)
            run.events.delta(run.reply.rest(reply.content))
        else:
            run.events.discard()
        _mark_cancelled(turn, reply, timezone.now())
        turn.status = ChatTurn.Status.CANCELLED
        turn.assistant_message = reply
        turn.lease_expires_at = None
        outcome = turn_outcome(turn)
        run.events.add(TurnEvent.Name.CANCELLED, outcome_data(outcome))
    return outcome


def _mark_failed(run, exc):
    """Record the failure, unless a newer try has taken the turn over meanwhile."""
    turn = run.turn
    detail = str(getattr(exc, "detail", "") or type(exc).__name__)
    status = getattr(exc, "status_code", 502)
    try:
        with transaction.atomic():
            marked = ChatTurn.objects.filter(
                pk=turn.pk, status=ChatTurn.Status.RUNNING, attempts=turn.attempts
            ).update(
                status=ChatTurn.Status.FAILED,
                lease_expires_at=None,
                error=detail[:500],
                updated_at=timezone.now(),
            )
            if marked:
                run.events.discard()
                run.events.add(
                    TurnEvent.Name.FAILED,
                    {"status": status if status in (502, 503) else 502, "detail": detail},
                )
    except DatabaseError:
        logger.warning("could not mark chat turn %s failed; its lease will expire", turn.pk)


# --- 3. Outcome ---------------------------------------------------------------------


def turn_outcome(turn: ChatTurn) -> TurnOutcome:
    """The answer of a finished turn, built from its stored messages (one query)."""
    keys = _keys(turn)
    steps, results = {}, {}
    for message in Message.objects.filter(
        conversation_id=turn.conversation_id, client_id__in=list(keys)
    ):
        kind, i, j = keys[message.client_id]
        if kind == "step":
            steps[i] = message
        else:
            results[(i, j)] = message
    reply = None
    if turn.assistant_message_id is not None:
        reply = next((m for m in steps.values() if m.pk == turn.assistant_message_id), None)
        if reply is None:
            # Stored at a step beyond today's CHAT_MAX_TOOL_ROUNDS (the setting went down).
            reply = Message.objects.get(pk=turn.assistant_message_id)
    return _outcome(turn, steps, results, reply)


def _outcome(turn, steps, results, reply):
    calls = []
    for i in sorted(steps):
        for j, call in enumerate(requested_calls(steps[i])):
            stored = results.get((i, j))
            entries = tool_results(stored) if stored is not None else []
            calls.append(
                {
                    "id": call.id,
                    "name": call.name,
                    "arguments": call.arguments,
                    "result": entries[0][2] if entries else None,
                }
            )
    return TurnOutcome(
        conversation_id=turn.conversation_id,
        user_message=turn.user_message,
        assistant_message=reply,
        tool_calls=calls,
        status=turn.status,
    )


def outcome_data(outcome: TurnOutcome) -> dict:
    """The API's answer for a finished turn (the body of `POST chat/`, and of its
    `turn.done` / `turn.cancelled` event), as JSON values."""
    reply = outcome.assistant_message
    return as_json(
        {
            "conversation_id": outcome.conversation_id,
            "user_message": message_data(outcome.user_message),
            "assistant_message": None if reply is None else message_data(reply),
            # Arguments that were not a JSON object answer `{}` (the result says so).
            "tool_calls": [
                {
                    **call,
                    "arguments": call["arguments"] if isinstance(call["arguments"], dict) else {},
                }
                for call in outcome.tool_calls
            ],
            "status": outcome.status,
        }
    )
