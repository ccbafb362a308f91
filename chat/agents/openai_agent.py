"""The openai agent: any OpenAI-compatible Chat Completions endpoint, with function calling.

Configured by the environment: `OPENAI_API_KEY` (any non-empty value for servers
that need none, such as a local Ollama), `OPENAI_BASE_URL` (e.g.
http://localhost:11434/v1) and `settings.CHAT_MODEL`. One `next_step` is one
streamed Chat Completions request (`stream=True`: its text is passed to
`on_text` as it arrives, its tool calls are put together from their deltas),
with the time left in the turn as its timeout and no retries inside the SDK:
the turn itself is retry-safe, so a client retries it.

Chat Completions rather than the OpenAI Agents SDK: the Agents SDK owns the tool
loop (it runs the tools itself, keeps its own session state and traces to OpenAI
by default), while a turn here must store every tool call and result as it
happens, resume a failed turn from those stored results, bound the loop and the
time, and keep no state in the process; and Chat Completions is what every
OpenAI-compatible server (Ollama, vLLM, LiteLLM) speaks.
"""

import json
import logging
import os
import time

from django.conf import settings

from .base import AgentFailed, AgentTimeout, AgentUnavailable, Step, ToolCall, tool_results

logger = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You are a friendly assistant that manages the user's todo list with the tools "
    "provided. Use the tools to read and change tasks; never invent a task id: call "
    "list_tasks to find it. When a tool answers ok=false, explain the problem to the "
    "user plainly. Answer briefly, in plain sentences. It is now {now} ({weekday}) in "
    'the user\'s time zone, {zone}: read dates and times the user gives ("tomorrow", '
    '"at 5pm", "next friday") in that zone, and pass tools ISO 8601 date-times '
    "with the zone's offset. A task can have a due_at, a priority (low, normal, high: "
    '"urgent" is high), tags ("#home" is the tag home) and a repeat (daily, '
    "weekly, monthly)."
)


def system_prompt(context):
    """The system message: the instructions, with the current time and the user's zone."""
    local = context.local_now
    return SYSTEM_PROMPT.format(
        now=local.isoformat(timespec="minutes"),
        weekday=local.strftime("%A"),
        zone=context.zone_name,
    )


def tool_specs(tools):
    return [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.parameters,
            },
        }
        for tool in tools
    ]


def chat_messages(history):
    """The stored history as Chat Completions messages.

    Drops what the API would refuse: a tool result that does not answer the
    assistant message just before it (the window may start between a call and its
    result), and an assistant's call with no result right after it. Tool data that
    is not in the shape `chat.turns` stores is ignored.
    """
    messages, open_calls = [], set()
    for index, message in enumerate(history):
        if message.role == "tool":
            entries = tool_results(message)
            for call_id, _name, result in entries:
                if call_id in open_calls:
                    open_calls.discard(call_id)
                    # The stored text of a single result is exactly what the tool returned.
                    text = message.content if len(entries) == 1 else json.dumps(result)
                    messages.append({"role": "tool", "tool_call_id": call_id, "content": text})
            continue
        open_calls = set()
        answered = _answered_after(history, index)
        calls = [c for c in _calls(message) if c.id in answered]
        if _calls(message):
            if not calls:
                continue
            open_calls = {c.id for c in calls}
            messages.append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": c.id,
                            "type": "function",
                            "function": {"name": c.name, "arguments": c.arguments_text()},
                        }
                        for c in calls
                    ],
                }
            )
        elif message.role in ("user", "assistant", "system"):
            messages.append({"role": message.role, "content": message.content})
    return messages


def _answered_after(history, index):
    """The call ids answered by the tool messages right after `history[index]`."""
    answered = set()
    for message in history[index + 1 :]:
        if message.role != "tool":
            break
        answered.update(entry[0] for entry in tool_results(message))
    return answered


def _calls(message):
    if message.role != "assistant" or not isinstance(message.tool_calls, list):
        return []
    return [
        ToolCall.from_json(e) for e in message.tool_calls if isinstance(e, dict) and e.get("id")
    ]


def parse_arguments(text):
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return text
    return value if isinstance(value, dict) else text


class OpenAIAgent:
    """One Chat Completions request per step; see the module docstring."""

    def __init__(self):
        self.api_key = os.environ.get("OPENAI_API_KEY", "")
        self.base_url = os.environ.get("OPENAI_BASE_URL") or None
        self.model = settings.CHAT_MODEL

    def client(self, timeout):
        import openai

        if not self.api_key:
            raise AgentUnavailable(
                "The openai agent is not configured: set OPENAI_API_KEY (any value for a "
                "server that needs none), or set CHAT_AGENT=rules."
            )
        return openai.OpenAI(
            api_key=self.api_key, base_url=self.base_url, timeout=timeout, max_retries=0
        )

    def next_step(self, *, history, tools, final, timeout, context, on_text=None):
        import openai

        system = system_prompt(context)
        deadline = time.monotonic() + timeout
        answer = StreamedAnswer()
        try:
            with self.client(timeout) as client:
                stream = client.chat.completions.create(
                    model=self.model,
                    messages=[{"role": "system", "content": system}, *chat_messages(history)],
                    tools=tool_specs(tools),
                    tool_choice="none" if final else "auto",
                    stream=True,
                )
                with stream:
                    for chunk in stream:
                        text = answer.add(chunk)
                        if on_text is not None:
                            on_text(text)
                        if time.monotonic() > deadline:
                            raise AgentTimeout()
        except openai.APITimeoutError:
            raise AgentTimeout() from None
        except openai.APIConnectionError as exc:
            logger.warning("model server unreachable: %s", exc)
            raise AgentUnavailable("The model server cannot be reached; try again later.") from None
        except openai.RateLimitError:
            raise AgentUnavailable("The model server is busy (rate limited); try again.") from None
        except openai.APIStatusError as exc:
            logger.warning("model server answered %s: %s", exc.status_code, exc.message)
            raise AgentFailed(
                f"The model server refused the request (HTTP {exc.status_code})."
            ) from None
        except openai.OpenAIError as exc:
            logger.warning("model call failed: %s", exc)
            raise AgentFailed("The model's answer could not be read.") from None
        return self.step_of(answer, final=final)

    def step_of(self, answer, *, final):
        if not answer.chunks:
            raise AgentFailed("The model returned no answer.")
        text = answer.text.strip()
        calls = [] if final else answer.calls()
        tool_calls = tuple(
            ToolCall(
                id=call_id or f"call_{index}",
                name=name,
                arguments=parse_arguments(arguments),
            )
            for index, (call_id, name, arguments) in enumerate(calls)
            if name
        )
        if not tool_calls and not text:
            if final and answer.calls():
                raise AgentFailed(
                    f"The assistant did not finish within {settings.CHAT_MAX_TOOL_ROUNDS} "
                    "rounds of tool calls."
                )
            raise AgentFailed("The model returned an empty answer.")
        return Step(text=text, tool_calls=tool_calls)


class StreamedAnswer:
    """The first choice of a streamed completion, put together from its chunks.

    Text arrives as `delta.content` pieces; each tool call as pieces keyed by its
    `index`: the first carries its id and name, the following ones more of its
    arguments' JSON text.
    """

    def __init__(self):
        self.chunks = 0
        self.text = ""
        self.tool_calls = {}

    def add(self, chunk):
        """Take a chunk; returns its text ("" if it has none)."""
        self.chunks += 1
        choices = getattr(chunk, "choices", None) or []
        delta = getattr(choices[0], "delta", None) if choices else None
        if delta is None:
            return ""
        for call in getattr(delta, "tool_calls", None) or []:
            entry = self.tool_calls.setdefault(call.index or 0, ["", "", ""])
            function = getattr(call, "function", None)
            entry[0] = entry[0] or (call.id or "")
            if function is not None:
                entry[1] += function.name or ""
                entry[2] += function.arguments or ""
        text = getattr(delta, "content", None) or ""
        self.text += text
        return text

    def calls(self):
        """`(id, name, arguments text)` of each tool call, in index order."""
        return [tuple(self.tool_calls[index]) for index in sorted(self.tool_calls)]
