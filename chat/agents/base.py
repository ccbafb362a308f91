"""What an agent is: a function from the conversation so far to its next step.

An agent never runs tools and never touches the database: `chat.turns` asks it for
one step at a time, stores the step, runs the tools it asked for, stores their
results and asks again. That is what lets a failed turn resume from its stored
tool results (no tool call runs twice) and what bounds the tool loop. An agent is
stateless: everything it knows is in `history`.
"""

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Protocol

from core.errors import Unavailable, UpstreamFailed


class AgentFailed(UpstreamFailed):
    """The agent (or the model behind it) failed: answered 502."""

    default_detail = "The assistant failed to answer; try again."


class AgentTimeout(Unavailable):
    """The agent ran out of time: answered 503."""

    default_detail = "The assistant took too long to answer; try again."


class AgentUnavailable(Unavailable):
    """The agent cannot be reached or is not configured: answered 503."""

    default_detail = "The assistant is unavailable right now; try again later."


@dataclass(frozen=True)
class TurnContext:
    """What an agent knows besides the history: the time the turn runs at and the
    user's time zone, in which "tomorrow" or "at 5pm" are read."""

    now: datetime
    zone: tzinfo = UTC

    @property
    def local_now(self):
        return self.now.astimezone(self.zone)

    @property
    def zone_name(self):
        return getattr(self.zone, "key", None) or str(self.zone)


@dataclass(frozen=True)
class ToolCall:
    """A call the agent asks for; `arguments` is a dict, or the model's raw text."""

    id: str
    name: str
    arguments: dict | str

    def as_json(self):
        return {"id": self.id, "name": self.name, "arguments": self.arguments}

    @classmethod
    def from_json(cls, data):
        return cls(
            id=str(data.get("id", "")),
            name=str(data.get("name", "")),
            arguments=data.get("arguments", {}),
        )

    def arguments_text(self):
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments, ensure_ascii=False)


@dataclass(frozen=True)
class Step:
    """The agent's answer: tool calls to run, or (with none) the final reply `text`."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = field(default=())

    @property
    def is_reply(self):
        return not self.tool_calls


class Agent(Protocol):
    def next_step(
        self, *, history, tools, final: bool, timeout: float, context: TurnContext, on_text=None
    ) -> Step:
        """The next step after `history` (stored `chat.models.Message`s, oldest first).

        `history` is a bounded window of the conversation, then the user's message
        of this turn, then the steps and tool results of this turn so far. Tool
        messages carry `tool_calls=[{"id", "name", "result"}]`; assistant steps that
        called tools carry `tool_calls=[{"id", "name", "arguments"}]`. `tools` are
        the `tasks.tools.Tool`s on offer. With `final` the step must be a reply.
        `context` gives the current time and the user's time zone.
        Raises `AgentFailed`, `AgentTimeout` or `AgentUnavailable`; must return
        within `timeout` seconds.

        `on_text` (optional: agents without the parameter are sent whole) is called
        with each piece of the step's text as the model produces it, in order, so
        that the pieces concatenate to `Step.text` before stripping; and with ""
        while the model works without text (tool-call deltas), so the turn can
        check for a cancel. Whatever `on_text` raises must propagate.
        """
        ...


def tool_results(message):
    """The `(id, name, result)` entries of a stored tool message (empty if malformed)."""
    entries = message.tool_calls if isinstance(message.tool_calls, list) else []
    return [
        (str(e.get("id", "")), str(e.get("name", "")), e.get("result"))
        for e in entries
        if isinstance(e, dict)
    ]


def requested_calls(message):
    """The `ToolCall`s of a stored assistant step (empty if none or malformed)."""
    entries = message.tool_calls if isinstance(message.tool_calls, list) else []
    return [ToolCall.from_json(e) for e in entries if isinstance(e, dict) and e.get("name")]
