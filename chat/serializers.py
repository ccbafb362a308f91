from operator import attrgetter

import orjson
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.fields import JSONArrayField, StrictBooleanField, StrictCharField
from tasks.tools import RESULT_SCHEMA

from .models import CONTENT_MAX_LENGTH, CONVERSATION_TITLE_MAX_LENGTH, Conversation, Message
from .selectors import (
    CONVERSATION_FIELDS,
    MESSAGE_FIELDS,
    MESSAGE_ROW_ATTRIBUTES,
    conversation_values,
)


class ConversationSerializer(serializers.ModelSerializer):
    """A conversation between the caller and the assistant."""

    # Input is validated here; output is built by conversation_data.

    title = StrictCharField(
        max_length=CONVERSATION_TITLE_MAX_LENGTH,
        allow_blank=True,
        required=False,
        trim_whitespace=False,
    )
    archived = StrictBooleanField(required=False, help_text="Left out of the default list.")
    pinned = StrictBooleanField(required=False, help_text="Listed first.")

    class Meta:
        model = Conversation
        fields = CONVERSATION_FIELDS
        read_only_fields = ["id", "created_at", "updated_at", "message_count"]

    def to_representation(self, conversation):
        return conversation_data(conversation)


class MessageSerializer(serializers.ModelSerializer):
    """A message of a conversation; append-only."""

    # Input is validated here; output is built by message_data.

    role = serializers.ChoiceField(choices=Message.Role.choices)
    content = StrictCharField(max_length=CONTENT_MAX_LENGTH, trim_whitespace=False)
    tool_calls = JSONArrayField(
        required=False,
        allow_null=True,
        help_text=(
            "A JSON array: an assistant's tool calls, or a tool's result. No string in "
            "it, key or value, may contain a NUL character."
        ),
    )
    client_id = serializers.UUIDField(
        required=False,
        allow_null=True,
        help_text="Chosen by the client; the same client_id is never stored twice.",
    )

    class Meta:
        model = Message
        fields = MESSAGE_FIELDS
        read_only_fields = ["id", "conversation", "seq", "created_at", "superseded_at"]

    def to_representation(self, message):
        return message_data(message)


def conversation_data(conversation):
    """A conversation's API form, from a Conversation or a page row."""
    return dict(zip(CONVERSATION_FIELDS, conversation_values(conversation), strict=True))


def message_data(message):
    """A Message's API form."""
    return dict(zip(MESSAGE_FIELDS, message_values(message), strict=True))


def message_row_data(row):
    """A page row's API form (`chat.selectors.message_page_rows`). Its tool calls come
    as the stored JSON text and go out as they are (an orjson Fragment), never parsed
    and dumped again: on a page of assistant replies that was a fifth of the CPU. The
    database holds only valid JSON there (jsonb on PostgreSQL, a JSON_VALID check on
    SQLite).
    """
    data = dict(zip(MESSAGE_FIELDS, message_row_values(row), strict=True))
    if data["tool_calls"] is not None:
        data["tool_calls"] = orjson.Fragment(data["tool_calls"])
    return data


message_values = attrgetter(
    *({"conversation": "conversation_id"}.get(name, name) for name in MESSAGE_FIELDS)
)
message_row_values = attrgetter(*MESSAGE_ROW_ATTRIBUTES)


class ChatTurnSerializer(serializers.Serializer):
    """A chat turn: the user's message, optionally in an existing conversation, made
    safe to retry by a client_id."""

    message = StrictCharField(
        max_length=CONTENT_MAX_LENGTH,
        trim_whitespace=False,
        help_text="The user's message (1..10,000 characters, no NUL).",
    )
    conversation_id = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=2**63 - 1,
        help_text="Continue this conversation; without it a new one is started.",
    )
    client_id = serializers.UUIDField(
        required=False,
        allow_null=True,
        help_text=(
            "Chosen by the client; becomes the user message's client_id. Sending it again "
            "never runs the turn twice: 200 with the stored outcome, or 409 while it runs."
        ),
    )


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": True,
        "description": (
            "The arguments the tool was called with (`{}` when the model sent some that "
            "were not a JSON object; the result then says so)."
        ),
    },
    component_name="ToolArguments",
)
class ToolArgumentsField(serializers.JSONField):
    pass


@extend_schema_field(RESULT_SCHEMA, component_name="ToolResult")
class ToolResultField(serializers.JSONField):
    pass


class ChatToolCallSerializer(serializers.Serializer):
    """One tool call the assistant made in a turn, with its result."""

    id = serializers.CharField(help_text="The call's id within the turn.")
    name = serializers.CharField(help_text="The tool: add_task, list_tasks, ...")
    arguments = ToolArgumentsField()
    result = ToolResultField(allow_null=True)


class ChatTurnResponseSerializer(serializers.Serializer):
    """The answer of a chat turn: the user's message and the assistant's reply as
    stored, the tool calls the assistant made in between, with their results, and
    how the turn ended."""

    conversation_id = serializers.IntegerField()
    user_message = MessageSerializer()
    assistant_message = MessageSerializer(
        allow_null=True, help_text="null only for a turn cancelled before it said anything."
    )
    tool_calls = ChatToolCallSerializer(many=True)
    status = serializers.ChoiceField(choices=["succeeded", "cancelled"])


class ChatTurnStatusSerializer(serializers.Serializer):
    """A chat turn, by the client_id that started it, and where it stands (a running
    turn whose server stopped counts as failed)."""

    client_id = serializers.UUIDField()
    conversation_id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["running", "succeeded", "failed", "cancelled"])
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


def turn_data(turn, status):
    return {
        "client_id": turn.client_id,
        "conversation_id": turn.conversation_id,
        "status": status,
        "created_at": turn.created_at,
        "updated_at": turn.updated_at,
    }
