import contextlib
import functools

from chatkit.server import StreamingResult
from chatkit.store import NotFoundError
from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from pydantic import ValidationError as PydanticValidationError
from rest_framework import mixins, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import DomainError, NotFound

from . import selectors, services, turns
from .chatkit_server import server as chatkit_server
from .chatkit_store import ChatKitContext
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


class ChatKitRequestInvalid(DomainError):
    default_detail = "The body is not a ChatKit request."


class ChatKitNotFound(NotFound):
    default_detail = "No such thread or item."


class FirstRenderer(BaseContentNegotiation):
    """ChatKit clients may ask for text/event-stream: errors still answer JSON."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class ChatKitView(APIView):
    """The ChatKit protocol (see `chat.chatkit_server`), bearer-token authenticated.

    The raw body goes to the SDK. A streaming request answers `text/event-stream`
    (its first event is made before the answer starts, so a refusal is a JSON error,
    never a broken stream); the others answer JSON. The SDK is async but, over our
    synchronous store, never waits on anything: `drive` runs it in this thread with
    no event loop and no thread hop, chunk by chunk as the response is sent.
    """

    parser_classes = []
    content_negotiation_class = FirstRenderer

    @extend_schema(request=OpenApiTypes.OBJECT, responses={200: OpenApiTypes.OBJECT})
    def post(self, request):
        context = ChatKitContext(user=request.user)
        try:
            result = drive(chatkit_server.process(request.body, context))
            if isinstance(result, StreamingResult):
                events = result.__aiter__()
                first = drive(anext(events, None))
        except PydanticValidationError as exc:
            raise ChatKitRequestInvalid(_request_problem(exc)) from None
        except NotFoundError:
            raise ChatKitNotFound() from None
        if isinstance(result, StreamingResult):
            response = StreamingHttpResponse(
                _chunks(first, events), content_type="text/event-stream"
            )
            response["Cache-Control"] = "no-cache"
            response["X-Accel-Buffering"] = "no"
            return response
        return HttpResponse(result.json, content_type="application/json")


def drive(awaitable):
    """Run `awaitable` to its end in this thread, without an event loop.

    For the ChatKit SDK over `chat.chatkit_store`, whose methods run the ORM directly
    when no loop runs: the only suspensions left are `asyncio.sleep(0)` (a bare
    yield), resumed at once. Anything that waits on a real future is a bug here.
    """
    steps = awaitable.__await__()
    try:
        while True:
            if steps.send(None) is not None:
                steps.close()
                raise RuntimeError("The ChatKit server waited on I/O outside the store.")
    except StopIteration as done:
        return done.value


def _chunks(first, events):
    """The stream's SSE chunks: the first one already made, then one at a time."""
    try:
        chunk = first
        while chunk is not None:
            yield chunk
            chunk = drive(anext(events, None))
    finally:
        # A client gone mid-stream: let the SDK's generator finish its cleanup.
        with contextlib.suppress(Exception):
            drive(events.aclose())


def _request_problem(exc):
    """The first few problems of a body that is not a ChatKit request, in words."""
    problems = []
    for error in exc.errors(include_url=False)[:3]:
        if error["type"] == "json_invalid":
            return "The body must be a JSON ChatKit request."
        where = ".".join(str(part) for part in error["loc"])
        problems.append(f"{where}: {error['msg']}" if where else error["msg"])
    return "Not a ChatKit request: " + "; ".join(problems)
