"""The chat agents, chosen by `settings.CHAT_AGENT`.

- `rules` (the default): understands plain-English todo requests offline, no key.
- `openai`: any OpenAI-compatible Chat Completions endpoint, with function calling.
- or the dotted path of a class with the `base.Agent` interface (tests inject one).
"""

from django.conf import settings
from django.utils.module_loading import import_string

from .base import Agent, AgentFailed, AgentTimeout, AgentUnavailable, Step, ToolCall

AGENTS = {
    "rules": "chat.agents.rules.RulesAgent",
    "openai": "chat.agents.openai_agent.OpenAIAgent",
}


def get_agent() -> Agent:
    name = settings.CHAT_AGENT
    try:
        agent_class = import_string(AGENTS.get(name, name))
    except ImportError:
        raise AgentUnavailable(
            f"CHAT_AGENT={name!r} names no agent; use one of {', '.join(AGENTS)}."
        ) from None
    return agent_class()


__all__ = [
    "AGENTS",
    "Agent",
    "AgentFailed",
    "AgentTimeout",
    "AgentUnavailable",
    "Step",
    "ToolCall",
    "get_agent",
]
