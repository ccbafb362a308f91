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
   step at a time. A step that calls tools is stored first (an assistant message
   with `tool_calls`); each call then runs in one short transaction that locks the
   conversation, checks that its result is not stored yet, runs the tool and
   stores the result (a `tool` message): a tool's effect and its stored result
   commit together or not at all. A reply is stored and the turn marked
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
"""

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from core.errors import Conflict, Unprocessable
from core.timezones import user_timezone
from tasks import tools

from . import services
from .agents import Agent, AgentFailed, AgentTimeout, AgentUnavailable, get_agent
from .agents.base import TurnContext, requested_calls, tool_results
from .models import CONTENT_MAX_LENGTH, ChatTurn, Conversation, Message

logger = logging.getLogger(__name__)

# A running turn's lease outlives its agent's time budget by this much.
LEASE_MARGIN = timedelta(seconds=30)
# Calls beyond this many in one step are dropped before they are stored.
MAX_CALLS_PER_STEP = 8
TITLE_LENGTH = 80


class TurnInProgress(Conflict):
    default_detail = (
        "A chat turn with this client_id is still running; retry in a few seconds to get "
        "its answer."
    )


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
    assistant_message: Message
    tool_calls: list = field(default_factory=list)


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
    content = services.clean_content(message)
    turn = _claim(
        owner=owner, content=content, conversation_id=conversation_id, client_id=client_id
    )
    turn.owner = owner
    if turn.status != ChatTurn.Status.SUCCEEDED:
        _run(turn, agent or get_agent())
    return turn_outcome(turn)


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
    if turn.status == ChatTurn.Status.SUCCEEDED:
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
    return ChatTurn.objects.create(
        owner=owner,
        conversation_id=user_message.conversation_id,
        key=uuid.uuid4(),
        client_id=client_id,
        user_message=user_message,
        status=ChatTurn.Status.RUNNING,
        lease_expires_at=now + _lease(),
        created_at=now,
        updated_at=now,
    )


# --- 2. Run -------------------------------------------------------------------------


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


def turn_context(owner):
    """The agent's clock and the owner's time zone. `settings.CHAT_NOW` (tests only)
    pins the clock."""
    return TurnContext(now=settings.CHAT_NOW or timezone.now(), zone=user_timezone(owner))


def _run(turn, agent):
    deadline = time.monotonic() + settings.CHAT_AGENT_TIMEOUT
    try:
        _advance(turn, agent, deadline, turn_context(turn.owner))
    except BaseException as exc:
        _mark_failed(turn, exc)
        raise


def _advance(turn, agent, deadline, context):
    state = _load(turn)
    rounds = _rounds()
    for index in range(rounds + 1):
        message = state.steps.get(index)
        if message is None:
            step = _ask(
                agent, state.history, final=index >= rounds, deadline=deadline, context=context
            )
            with transaction.atomic():
                message = _store_step(turn, index, step, used_ids=state.call_ids())
                if not message.tool_calls:
                    _mark_succeeded(turn, message)
        elif not message.tool_calls:
            _mark_succeeded(turn, message)
        if not message.tool_calls:
            return
        state.history.append(message)
        for j, call in enumerate(requested_calls(message)):
            result = state.results.get((index, j)) or _execute(turn, index, j, call)
            state.history.append(result)
    raise AgentFailed(f"The assistant did not finish within {rounds} rounds of tool calls.")


def _ask(agent, history, *, final, deadline, context):
    """The agent's next step, checked; no transaction is open here."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise AgentTimeout()
    try:
        step = agent.next_step(
            history=list(history),
            tools=list(tools.TOOLS.values()),
            final=final,
            timeout=remaining,
            context=context,
        )
    except (AgentFailed, AgentTimeout, AgentUnavailable):
        raise
    except Exception as exc:
        logger.exception("chat agent %s crashed", type(agent).__name__)
        raise AgentFailed() from exc
    if time.monotonic() > deadline:
        raise AgentTimeout()
    if final and not step.is_reply:
        raise AgentFailed(f"The assistant did not finish within {_rounds()} rounds of tool calls.")
    if step.is_reply and not step.text.strip():
        raise AgentFailed("The assistant returned an empty answer.")
    return step


def _fit(text):
    return text if len(text) <= CONTENT_MAX_LENGTH else text[: CONTENT_MAX_LENGTH - 1] + "…"


def _store_step(turn, index, step, *, used_ids):
    """Store the agent's step (or adopt the one a racing try stored under its key)."""
    if step.is_reply:
        return _append(turn, f"step:{index}", role="assistant", content=_fit(step.text.strip()))
    calls = []
    for j, call in enumerate(step.tool_calls[:MAX_CALLS_PER_STEP]):
        call_id = call.id[:64]
        if not call_id or call_id in used_ids:
            call_id = f"call_{index}_{j}"
        used_ids.add(call_id)
        calls.append({"id": call_id, "name": call.name[:64], "arguments": call.arguments})
    names = ", ".join(dict.fromkeys(c["name"] for c in calls))
    content = step.text.strip() or f"Calling {names}."
    return _append(turn, f"step:{index}", role="assistant", content=_fit(content), tool_calls=calls)


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


def _execute(turn, index, j, call):
    """Run one stored call and store its result, in one transaction: at most once."""
    client_id = message_key(turn, f"result:{index}:{j}")
    with transaction.atomic():
        locked = (
            Conversation.objects.select_for_update()
            .filter(pk=turn.conversation_id)
            .values_list("pk", flat=True)
        )
        if not list(locked):
            raise services.ConversationNotFound()
        stored = Message.objects.filter(
            conversation_id=turn.conversation_id, client_id=client_id
        ).first()
        if stored is not None:
            return stored
        result = tools.call_tool(owner=turn.owner, name=call.name, arguments=call.arguments)
        message, _ = services.message_append(
            owner=turn.owner,
            conversation_id=turn.conversation_id,
            role=Message.Role.TOOL,
            content=tools.encode(result),
            tool_calls=[{"id": call.id, "name": call.name, "result": result}],
            client_id=client_id,
        )
        return message


def _mark_succeeded(turn, reply):
    now = timezone.now()
    ChatTurn.objects.filter(pk=turn.pk).update(
        status=ChatTurn.Status.SUCCEEDED,
        assistant_message=reply,
        lease_expires_at=None,
        error="",
        updated_at=now,
    )
    turn.status = ChatTurn.Status.SUCCEEDED
    turn.assistant_message = reply
    turn.lease_expires_at = None


def _mark_failed(turn, exc):
    """Record the failure, unless a newer try has taken the turn over meanwhile."""
    detail = str(getattr(exc, "detail", "") or type(exc).__name__)
    try:
        ChatTurn.objects.filter(
            pk=turn.pk, status=ChatTurn.Status.RUNNING, attempts=turn.attempts
        ).update(
            status=ChatTurn.Status.FAILED,
            lease_expires_at=None,
            error=detail[:500],
            updated_at=timezone.now(),
        )
    except DatabaseError:
        logger.warning("could not mark chat turn %s failed; its lease will expire", turn.pk)


# --- 3. Outcome ---------------------------------------------------------------------


def turn_outcome(turn: ChatTurn) -> TurnOutcome:
    """The answer of a succeeded turn, built from its stored messages (one query)."""
    keys = _keys(turn)
    steps, results, reply = {}, {}, None
    for message in Message.objects.filter(
        conversation_id=turn.conversation_id, client_id__in=list(keys)
    ):
        kind, i, j = keys[message.client_id]
        if kind == "step":
            steps[i] = message
        else:
            results[(i, j)] = message
        if message.pk == turn.assistant_message_id:
            reply = message
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
    if reply is None:
        # Stored at a step beyond today's CHAT_MAX_TOOL_ROUNDS (the setting went down).
        reply = Message.objects.get(pk=turn.assistant_message_id)
    return TurnOutcome(
        conversation_id=turn.conversation_id,
        user_message=turn.user_message,
        assistant_message=reply,
        tool_calls=calls,
    )
