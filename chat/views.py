import functools

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from . import selectors, services, turns
from .models import Conversation, Message
from .serializers import (
    ChatTurnResponseSerializer,
    ChatTurnSerializer,
    ConversationSerializer,
    MessageSerializer,
    chat_turn_data,
    conversation_data,
    message_data,
    message_row_data,
)


@extend_schema_view(
    list=extend_schema(description="The caller's conversations, most recent activity first."),
    create=extend_schema(description="Start a conversation."),
    retrieve=extend_schema(description="One of the caller's conversations."),
    partial_update=extend_schema(description="Change a conversation's title."),
    destroy=extend_schema(description="Delete a conversation with all of its messages."),
)
class ConversationViewSet(viewsets.ModelViewSet):
    """The caller's conversations. Another user's conversation is 404 on every method."""

    serializer_class = ConversationSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    lookup_value_converter = "int"
    keyset_orderings = {"-updated_at": ("-updated_at", "-id")}
    default_keyset_ordering = "-updated_at"

    def get_queryset(self):
        return selectors.conversations_of(self.request.user)

    def list(self, request, *args, **kwargs):
        page = self.paginator.paginate(
            request,
            self,
            model=Conversation,
            build=selectors.conversation_page_rows,
            values={"owner_id": request.user.pk},
        )
        return self.get_paginated_response([conversation_data(row) for row in page])

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        conversation = services.conversation_create(owner=request.user, **serializer.validated_data)
        return Response(conversation_data(conversation), status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        conversation = self.get_object()
        serializer = self.get_serializer(conversation, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        if "title" in serializer.validated_data:
            services.conversation_update(
                conversation=conversation, title=serializer.validated_data["title"]
            )
        return Response(conversation_data(conversation))

    def destroy(self, request, *args, **kwargs):
        services.conversation_delete_owned(owner=request.user, conversation_id=self.kwargs["pk"])
        return Response(status=status.HTTP_204_NO_CONTENT)


# The path names the conversation `{id}`, as `conversations/{id}/` does (API.md).
CONVERSATION_ID = OpenApiParameter(
    "id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The conversation's id."
)


@extend_schema_view(
    list=extend_schema(
        description=(
            "A conversation's messages in `seq` order (`?ordering=-seq`: newest first). "
            "With `?after_seq=N`, only those appended after the message numbered N."
        ),
        parameters=[
            OpenApiParameter(
                "after_seq",
                {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
                description="Only messages appended after the one numbered N.",
            ),
            CONVERSATION_ID,
        ],
    ),
    create=extend_schema(
        description=(
            "Append a message. The same `client_id` sent again to the same conversation "
            "stores nothing new: 200 with the message stored the first time (422 if its "
            "role, content or tool_calls differ)."
        ),
        parameters=[CONVERSATION_ID],
        responses={201: MessageSerializer, 200: MessageSerializer},
    ),
)
class MessageViewSet(mixins.ListModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    """A conversation's messages in seq order; append-only."""

    serializer_class = MessageSerializer
    page_size = 50
    max_page_size = 1000
    keyset_orderings = {"seq": ("seq",), "-seq": ("-seq",)}
    default_keyset_ordering = "seq"

    def after_seq(self):
        """`?after_seq=N` as an int, or None; anything but 0..2**31-1 is a 400."""
        after_seq = self.request.query_params.get("after_seq")
        if after_seq is None:
            return None
        try:
            after = int(after_seq)
            if not 0 <= after <= 2**31 - 1:
                raise ValueError
        except ValueError:
            raise ValidationError(
                {"after_seq": ["Must be a whole number from 0 to 2147483647."]}
            ) from None
        return after

    def list(self, request, *args, **kwargs):
        conversation_id = self.kwargs["id"]
        if not 0 < conversation_id < 2**63:  # no such id; SQLite cannot even bind it
            raise services.ConversationNotFound()
        after = self.after_seq()
        page = self.paginator.paginate(
            request,
            self,
            model=Message,
            build=functools.partial(selectors.message_page_rows, after=after is not None),
            values={"conversation_id": conversation_id, "after_seq": after},
        )
        # A message's owner is always its conversation's owner, so a page of the
        # caller's messages proves the conversation is theirs with no query of its
        # own; only an empty page needs the conversation looked up (404 if not theirs).
        if not page:
            services.conversation_get(owner=request.user, conversation_id=self.kwargs["id"])
        elif page[0].owner_id != request.user.pk:
            raise services.ConversationNotFound()
        return self.get_paginated_response([message_row_data(row) for row in page])

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        message, created = services.message_append(
            owner=request.user,
            conversation_id=self.kwargs["id"],
            **serializer.validated_data,
        )
        return Response(
            message_data(message), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class ChatTurnView(APIView):
    """One chat turn: store the message, let the agent use the task tools, answer.

    Safe to retry with the same `client_id`.
    """

    # The error answers (400, 404, 409, 422, 502, 503, ...) are added to the schema
    # by core.schema.error_responses.
    @extend_schema(
        request=ChatTurnSerializer,
        responses={200: ChatTurnResponseSerializer},
        description=(
            "One chat turn: the user's message is stored, the assistant answers, using "
            "the task tools (add_task, list_tasks, complete_task, delete_task, "
            "update_task) as the caller, and every step is stored in the conversation. "
            "Without `conversation_id` a new conversation is started. Safe to retry: "
            "the same `client_id` answers the stored outcome of the first try (409 "
            "while it still runs). If the assistant fails (502, 503) the user's "
            "message stays stored."
        ),
    )
    def post(self, request):
        serializer = ChatTurnSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        outcome = turns.chat_turn(owner=request.user, **serializer.validated_data)
        return Response(chat_turn_data(outcome))
