import contextlib
import functools

from asgiref.sync import sync_to_async
from chatkit.server import StreamingResult
from chatkit.store import NotFoundError
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from pydantic import ValidationError as PydanticValidationError
from rest_framework import generics, mixins, serializers, status, viewsets
from rest_framework.exceptions import NotAcceptable, ValidationError
from rest_framework.negotiation import BaseContentNegotiation, DefaultContentNegotiation
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import DomainError, NotFound

from . import chatkit_reads, selectors, services, streams, turns
from .chatkit_server import cancel_turn
from .chatkit_server import server as chatkit_server
from .chatkit_store import ChatKitContext
from .models import ChatTurn, Conversation, Message
from .search import snippet
from .serializers import (
    ChatTurnResponseSerializer,
    ChatTurnSerializer,
    ChatTurnStatusSerializer,
    ConversationSerializer,
    MessageSerializer,
    conversation_data,
    message_data,
    message_row_data,
    turn_data,
)

SEARCH_PARAMETER = OpenApiParameter(
    "search",
    OpenApiTypes.STR,
    description=(
        "Words that must all match (case- and accent-insensitive; a word's beginning "
        "matches: `mil` finds milk). Any character is plain text; NUL is a 400."
    ),
)


def search_param(request):
    """`?search=` stripped, or None when absent or blank."""
    text = request.query_params.get("search", "").strip()
    return text or None


def archived_param(request):
    """`?archived=true|false` as a bool (default false); any other value is a 400."""
    raw = request.query_params.get("archived", "false")
    if raw not in ("true", "false"):
        raise ValidationError({"archived": ["Must be true or false."]})
    return raw == "true"


@extend_schema_view(
    list=extend_schema(
        description=(
            "The caller's conversations: pinned first, then most recent activity first; "
            "archived ones only with `?archived=true`. With `?search=`, those whose title "
            "or a message matches, most recent activity first."
        ),
        parameters=[
            OpenApiParameter(
                "archived",
                OpenApiTypes.BOOL,
                description="true: only the archived conversations; false (default): the others.",
            ),
            SEARCH_PARAMETER,
        ],
    ),
    create=extend_schema(description="Start a conversation."),
    retrieve=extend_schema(description="One of the caller's conversations."),
    partial_update=extend_schema(
        description="Change a conversation's title, or archive, unarchive, pin or unpin it."
    ),
    destroy=extend_schema(description="Delete a conversation with all of its messages."),
)
class ConversationViewSet(viewsets.ModelViewSet):
    """The caller's conversations: pinned first, then most recent activity first.
    Another user's conversation is 404 on every method.

    Archived ones are listed only with `?archived=true` (and then only they are).
    With `?search=`, those whose title or a message matches, most recent activity
    first (pinned or not).
    """

    serializer_class = ConversationSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    lookup_value_converter = "int"
    # The ordering is the contract's, not a choice: "-updated_at" is its only name.
    keyset_orderings = {"-updated_at": ("-pinned", "-updated_at", "-id")}
    default_keyset_ordering = "-updated_at"

    def get_queryset(self):
        return selectors.conversations_of(self.request.user)

    def list(self, request, *args, **kwargs):
        archived = archived_param(request)
        search = search_param(request)
        if search is None:
            page = self.paginator.paginate(
                request,
                self,
                model=Conversation,
                build=selectors.conversation_page_rows,
                values={"owner_id": request.user.pk, "archived": archived},
            )
        else:
            self.keyset_orderings = {"-updated_at": ("-updated_at", "-id")}
            page = self.paginator.paginate(
                request,
                self,
                model=Conversation,
                build=functools.partial(
                    selectors.conversation_search_rows,
                    request.user.pk,
                    search=search,
                    archived=archived,
                ),
                values={},
                reuse=False,
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
        services.conversation_update(conversation=conversation, **serializer.validated_data)
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


class StreamOrJSON(DefaultContentNegotiation):
    """JSON for every answer that is not a stream, whatever the Accept header says.

    The views below answer `text/event-stream` themselves (a StreamingHttpResponse);
    every error, also to a request that asked for a stream, is JSON (API.md).
    """

    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except NotAcceptable:
            return renderers[0], renderers[0].media_type


def wants_stream(request):
    return "text/event-stream" in request.headers.get("Accept", "")


def last_event_id(request):
    """`Last-Event-ID` (or `?after=`) as an int >= 0; 0 without either; 400 if bad."""
    value = request.headers.get("Last-Event-ID")
    if value is None:
        value = request.query_params.get("after", "0")
    try:
        after = int(value)
        if not 0 <= after <= 2**31 - 1:
            raise ValueError
    except ValueError:
        raise ValidationError(
            {"after": ["Last-Event-ID and ?after= must be a whole number from 0 to 2147483647."]}
        ) from None
    return after


SSE_EVENTS = """Server-Sent Events, each with an `id:` (1, 2, 3, ... within the turn), an
`event:` name and one line of JSON `data:`:

- `turn.started` `{"client_id", "conversation_id", "user_message"}`: first.
- `message.delta` `{"delta"}`: a piece of the reply text, in order; those after the
  last `tool.result` concatenate to exactly the stored reply.
- `tool.call` `{"message"}`: the assistant message with `tool_calls`, as stored.
- `tool.result` `{"message"}`: a tool message with its result, as stored.
- `turn.done`: the non-streaming answer (status `succeeded`); last.
- `turn.failed` `{"status": 502 | 503, "detail"}`: last, when the agent failed.
- `turn.cancelled`: the non-streaming answer (status `cancelled`, `assistant_message`
  possibly null); last.

A comment line (`: keep-alive`) is sent at least every 15 s while nothing else is."""


def sse_response(description):
    return OpenApiResponse(
        response={"type": "string", "description": SSE_EVENTS},
        description=description,
    )


class MessageSearchResultSerializer(MessageSerializer):
    """A message that matches a search, with the part of it that matches."""

    snippet = serializers.CharField(read_only=True, help_text="The part that matches.")

    class Meta(MessageSerializer.Meta):
        fields = (*MessageSerializer.Meta.fields, "snippet")


@extend_schema_view(get=extend_schema(parameters=[SEARCH_PARAMETER]))
class MessageSearchView(generics.ListAPIView):
    """The caller's messages across conversations, newest first: with `?search=`,
    those that match, each with `conversation` and a `snippet` around the first match."""

    serializer_class = MessageSearchResultSerializer
    keyset_orderings = {"-created_at": ("-created_at", "-id")}
    default_keyset_ordering = "-created_at"

    def list(self, request, *args, **kwargs):
        search = search_param(request)
        page = self.paginator.paginate(
            request,
            self,
            model=Message,
            build=functools.partial(selectors.message_search_rows, request.user.pk, search=search),
            values={},
            reuse=False,
        )
        return self.get_paginated_response(
            [
                {**message_row_data(row), "snippet": snippet(row.content, search or "")}
                for row in page
            ]
        )


class ChatTurnView(APIView):
    """One chat turn: store the message, let the agent use the task tools, answer.

    Safe to retry with the same `client_id`; see `chat.turns`. With `Accept:
    text/event-stream` the turn runs in a thread of this process and the answer
    streams its events (`chat.streams`); what is refused before the turn starts is
    a JSON answer as usual.
    """

    content_negotiation_class = StreamOrJSON

    # The error answers (400, 404, 409, 422, 502, 503, ...) are added to the schema
    # by core.schema.error_responses.
    @extend_schema(
        request=ChatTurnSerializer,
        responses={
            (200, "application/json"): ChatTurnResponseSerializer,
            (200, "text/event-stream"): sse_response(
                "With `Accept: text/event-stream`: the turn's events as it runs."
            ),
        },
        description=(
            "One chat turn: the user's message is stored, the assistant answers, using "
            "the task tools (add_task, list_tasks, complete_task, delete_task, "
            "update_task) as the caller, and every step is stored in the conversation. "
            "Without `conversation_id` a new conversation is started. Safe to retry: "
            "the same `client_id` answers the stored outcome of the first try (409 "
            "while it still runs). If the assistant fails (502, 503) the user's "
            "message stays stored. With `Accept: text/event-stream` the answer is the "
            "turn's events as it runs (Server-Sent Events)."
        ),
    )
    def post(self, request):
        serializer = ChatTurnSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if not wants_stream(request):
            outcome = turns.chat_turn(owner=request.user, **serializer.validated_data)
            return Response(turns.outcome_data(outcome))
        turn = turns.turn_claim(owner=request.user, **serializer.validated_data)
        if turn.status == ChatTurn.Status.RUNNING:
            turns.turn_run_in_background(turn)
        return streams.event_stream(request, turn, after=0)


TURN_PATH = [OpenApiParameter("client_id", OpenApiTypes.UUID, OpenApiParameter.PATH)]


class TurnView(APIView):
    """A chat turn of the caller, by the client_id that started it."""

    content_negotiation_class = StreamOrJSON

    @extend_schema(
        parameters=TURN_PATH,
        responses={200: ChatTurnStatusSerializer},
        description="The caller's chat turn started with this client_id, and its status.",
    )
    def get(self, request, client_id):
        turn = turns.turn_get(owner=request.user, client_id=client_id)
        return Response(turn_data(turn, turns.turn_status(turn)))


class TurnEventsView(APIView):
    """A chat turn's events as Server-Sent Events: replayed after an id, then followed."""

    content_negotiation_class = StreamOrJSON

    @extend_schema(
        parameters=[
            *TURN_PATH,
            OpenApiParameter(
                "after",
                {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
                description="Only the events with an id above N (as the Last-Event-ID header).",
            ),
            OpenApiParameter(
                "Last-Event-ID",
                {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
                OpenApiParameter.HEADER,
                description="The id of the last event the client saw.",
            ),
        ],
        responses={
            (200, "text/event-stream"): sse_response(
                "The turn's events after the given id; a running turn is followed to "
                "its last event, a finished turn's end at once."
            )
        },
        description=(
            "The turn's events as Server-Sent Events: with `Last-Event-ID: N` (or "
            "`?after=N`) only those with an id above N. A running turn is followed live "
            "to its last event, whichever server process runs it; a finished turn's "
            "events end at once."
        ),
    )
    def get(self, request, client_id):
        after = last_event_id(request)
        turn = turns.turn_get(owner=request.user, client_id=client_id)
        return streams.event_stream(request, turn, after=after)


class TurnCancelView(APIView):
    """Stop a running chat turn of the caller, wherever it runs."""

    content_negotiation_class = StreamOrJSON

    @extend_schema(
        parameters=TURN_PATH,
        request=None,
        responses={200: ChatTurnStatusSerializer},
        description=(
            "Stop the caller's running chat turn, wherever it runs: no further tool call "
            "starts, the reply so far (if any) is stored, its stream ends with "
            "`turn.cancelled`. A finished turn is left as it is. Answers the turn."
        ),
    )
    def post(self, request, client_id):
        turn = turns.turn_cancel(owner=request.user, client_id=client_id)
        return Response(turn_data(turn, turns.turn_status(turn)))


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
    never a broken stream); the others answer JSON. Under WSGI the SDK is driven in
    this thread with no event loop (`drive`: over our synchronous store it waits on
    nothing but the turn's events, which it sleeps for), chunk by chunk as the
    response is sent; under ASGI the rest of the stream runs in the event loop.
    Either way a client that goes away mid-stream cancels the turn (ChatKit's cancel).
    """

    parser_classes = []
    content_negotiation_class = FirstRenderer

    @extend_schema(request=OpenApiTypes.OBJECT, responses={200: OpenApiTypes.OBJECT})
    def post(self, request):
        context = ChatKitContext(user=request.user)
        try:
            fast = chatkit_reads.answer(request.body, request.user)
            if fast is not None:
                return HttpResponse(fast, content_type="application/json")
            result = drive(chatkit_server.process(request.body, context))
            if isinstance(result, StreamingResult):
                events = result.__aiter__()
                first = drive(anext(events, None))
        except PydanticValidationError as exc:
            raise ChatKitRequestInvalid(_request_problem(exc)) from None
        except NotFoundError:
            raise ChatKitNotFound() from None
        if isinstance(result, StreamingResult):
            is_asgi = isinstance(request._request, ASGIRequest)
            chunks = (_async_chunks if is_asgi else _chunks)(first, events, context)
            response = StreamingHttpResponse(chunks, content_type="text/event-stream")
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


def _chunks(first, events, context):
    """The stream's SSE chunks under WSGI: the first one already made, then one at a
    time, the SDK driven in this thread. A client gone mid-stream (the server closes
    the response) is a ChatKit cancel: our turn is cancelled."""
    try:
        chunk = first
        while chunk is not None:
            yield chunk
            chunk = drive(anext(events, None))
    finally:
        with contextlib.suppress(Exception):
            drive(events.aclose())
        cancel_turn(context)


async def _async_chunks(first, events, context):
    """The same under ASGI, the SDK run in the event loop: a client gone mid-stream
    cancels the task reading it, which the SDK hands to `handle_stream_cancelled`
    (our cancel); if it came between two events, the `finally` cancels."""
    try:
        chunk = first
        while chunk is not None:
            yield chunk
            chunk = await anext(events, None)
    finally:
        with contextlib.suppress(Exception):
            await events.aclose()
        await sync_to_async(cancel_turn)(context)


def _request_problem(exc):
    """The first few problems of a body that is not a ChatKit request, in words."""
    problems = []
    for error in exc.errors(include_url=False)[:3]:
        if error["type"] == "json_invalid":
            return "The body must be a JSON ChatKit request."
        where = ".".join(str(part) for part in error["loc"])
        problems.append(f"{where}: {error['msg']}" if where else error["msg"])
    return "Not a ChatKit request: " + "; ".join(problems)
