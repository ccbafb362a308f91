from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Length
from django.db.models.lookups import GreaterThanOrEqual, LessThanOrEqual
from django.utils import timezone

from .search import InMatchingMessage, Matches, clean_search

CONVERSATION_TITLE_MAX_LENGTH = 255
CONTENT_MAX_LENGTH = 10_000


class ConversationQuerySet(models.QuerySet):
    def owned_by(self, user):
        return self.filter(owner=user)

    def search(self, text, *, owner=None):
        """Conversations whose title, or one of whose messages, matches every word of
        `text` (chat/search.py). With `owner` (a user or a pk), only that owner's
        conversations, reading only their index entries (`InMatchingMessage`); without,
        everyone's (the admin)."""
        text = clean_search(text)
        title = Q(Matches(F("title"), text))
        if owner is None:
            in_messages = Message.objects.search(text).values("conversation_id")
            return self.filter(title | Q(pk__in=in_messages))
        owner = getattr(owner, "pk", owner)
        return self.filter(owner=owner).filter(title | Q(InMatchingMessage(text, owner)))


THREAD_STATUS_REASON_MAX_LENGTH = 200


class ThreadStatus(models.TextChoices):
    """A ChatKit thread's status other than active (ChatKit's `ThreadStatus`)."""

    LOCKED = "locked"
    CLOSED = "closed"


class Conversation(models.Model):
    """A chat between one user and the assistant.

    `updated_at` is the time of the last activity and `message_count` the number of
    messages; both move only through `chat.services.message_append`, under the
    conversation's row lock. `archived` puts it aside (out of the default list, and
    no chat turn continues it); `pinned` lists it first. `thread_status` (with its
    optional reason) is the status of its ChatKit thread, NULL for active: a
    ChatKit front end shows it and ChatKit takes no message into a thread that is not
    active; the REST API neither shows nor enforces it (docs/chatkit.md).
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="conversations",
        db_index=False,  # served by conversation_owner_list
    )
    title = models.CharField(max_length=CONVERSATION_TITLE_MAX_LENGTH, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    message_count = models.PositiveIntegerField(default=0)
    archived = models.BooleanField(default=False)
    pinned = models.BooleanField(default=False)
    # Its ChatKit thread's status: NULL is active (chat/chatkit_store.py). Nullable
    # without a default so that adding them kept SQLite's triggers (migration 0010).
    thread_status = models.CharField(  # noqa: DJ001
        max_length=6, null=True, blank=True, choices=ThreadStatus.choices
    )
    thread_status_reason = models.CharField(  # noqa: DJ001
        max_length=THREAD_STATUS_REASON_MAX_LENGTH, null=True, blank=True
    )

    objects = ConversationQuerySet.as_manager()

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [
            # The list: one owner's archived or other conversations, pinned first,
            # then most recent activity (keyset pages walk it in order).
            models.Index(
                fields=["owner", "archived", "pinned", "updated_at", "id"],
                name="conversation_owner_list",
            ),
            # ChatKit's threads.list: one owner's conversations by activity alone.
            models.Index(fields=["owner", "updated_at", "id"], name="conversation_owner_activity"),
            # Retention (`manage.py purge`): the conversations idle the longest.
            models.Index(fields=["updated_at", "id"], name="conversation_activity"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=LessThanOrEqual(Length("title"), CONVERSATION_TITLE_MAX_LENGTH),
                name="conversation_title_max_length",
            ),
            models.CheckConstraint(
                condition=Q(message_count__gte=0), name="conversation_message_count_gte_0"
            ),
            # A reason only with a status (held on SQLite by triggers: 0010).
            models.CheckConstraint(
                condition=Q(thread_status__isnull=False, thread_status__in=ThreadStatus.values)
                | Q(thread_status__isnull=True, thread_status_reason__isnull=True),
                name="conversation_thread_status_valid",
            ),
            # Referenced by the messages' and turns' (conversation_id, owner_id) keys:
            # chat/migrations/0003_owner_follows_conversation.py.
            models.UniqueConstraint(fields=["id", "owner"], name="conversation_id_owner_unique"),
        ]

    def __str__(self):
        return self.title or f"Conversation {self.pk}"


class MessageQuerySet(models.QuerySet):
    def owned_by(self, user):
        return self.filter(owner=user)

    def search(self, text):
        """Messages whose content matches every word of `text` (chat/search.py): the
        one meaning of message search, for the API and the admin."""
        return self.filter(Matches(F("content"), clean_search(text)))


class Message(models.Model):
    """One message of a conversation; append-only.

    `seq` numbers a conversation's messages 1, 2, 3, ... in commit order, which ids
    and timestamps do not follow, so "everything after seq N" never misses one.
    `owner` always equals the conversation's owner, and the database holds it so
    (a composite foreign key on PostgreSQL, triggers on SQLite; a conversation that
    changes owner takes its messages along): every table can be filtered, and
    partitioned, by user, and a read may trust a message's owner.
    """

    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"
        SYSTEM = "system"
        TOOL = "tool"

    # No single-column foreign keys in the database (db_constraint=False): the
    # composite key (conversation_id, owner_id) → the conversation's (id, owner_id)
    # already proves that both exist (and the conversation's owner key, the user),
    # and each extra key would cost every append a check and a row lock of its own
    # (the user's row, shared by all of that user's concurrent writes). Deletes
    # still cascade (Django's collector; the composite key refuses orphans).
    conversation = models.ForeignKey(
        Conversation,
        on_delete=models.CASCADE,
        related_name="messages",
        db_index=False,  # served by message_conversation_seq_unique
        db_constraint=False,
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="messages",
        db_constraint=False,
    )
    seq = models.PositiveIntegerField()
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField()
    tool_calls = models.JSONField(null=True, blank=True)
    client_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Set when a ChatKit `threads.retry_after_item` answers again: the message stays
    # in the REST log (append-only, gap-free seq) but leaves ChatKit's items and the
    # agent's history. Never cleared.
    superseded_at = models.DateTimeField(null=True, blank=True)

    objects = MessageQuerySet.as_manager()

    class Meta:
        ordering = ["seq"]
        indexes = [
            # The owner's messages newest first (`GET messages/`, and a search for a
            # common word, which the planner may walk this way rather than by GIN).
            models.Index(fields=["owner", "created_at", "id"], name="message_owner_created"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "seq"], name="message_conversation_seq_unique"
            ),
            models.UniqueConstraint(
                fields=["conversation", "client_id"],
                condition=Q(client_id__isnull=False),
                name="message_conversation_client_id_unique",
            ),
            models.CheckConstraint(condition=Q(seq__gte=1), name="message_seq_gte_1"),
            models.CheckConstraint(
                condition=Q(role__in=["user", "assistant", "system", "tool"]),
                name="message_role_valid",
            ),
            models.CheckConstraint(
                condition=GreaterThanOrEqual(Length("content"), 1)
                & LessThanOrEqual(Length("content"), CONTENT_MAX_LENGTH),
                name="message_content_length",
            ),
        ]

    def __str__(self):
        return f"{self.role} #{self.seq}"


class ChatTurn(models.Model):
    """One run of the chat endpoint: the user's message, the agent's steps, the reply.

    A turn is keyed by the client's `client_id` (when given), so a retried POST finds
    the turn it started instead of starting another. `status` goes running →
    succeeded, or running → failed → running again when a retry takes over; a
    running turn whose lease has expired (its process died) counts as failed. The
    messages a turn stores carry client ids derived from `key`, which makes each
    step and each tool result storable once only. A cancel sets
    `cancel_requested_at`; the process running the turn sees it between the model's
    deltas and before each tool call, and ends the turn `cancelled`. `cancelled` and
    `succeeded` are final. Changed only by `chat.turns`.
    """

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_turns"
    )
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="turns")
    key = models.UUIDField(editable=False)
    client_id = models.UUIDField(null=True, blank=True)
    # DO_NOTHING: messages are deleted only with their conversation, which deletes its
    # turns too; a cascade from here would stop messages being deleted in bulk.
    user_message = models.OneToOneField(Message, on_delete=models.DO_NOTHING, related_name="+")
    assistant_message = models.OneToOneField(
        Message, on_delete=models.DO_NOTHING, null=True, blank=True, related_name="+"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    attempts = models.PositiveIntegerField(default=1)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "client_id"],
                condition=Q(client_id__isnull=False),
                name="chatturn_owner_client_id_unique",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["running", "succeeded", "failed", "cancelled"]),
                name="chatturn_status_valid",
            ),
            # Referenced by the events' (turn_id, owner_id) key:
            # chat/migrations/0004_turn_events.py.
            models.UniqueConstraint(fields=["id", "owner"], name="chatturn_id_owner_unique"),
        ]

    def __str__(self):
        return f"turn {self.pk} ({self.status})"


class TurnEvent(models.Model):
    """One event of a chat turn's stream, as `GET chat/turns/{client_id}/events/` sends it.

    `seq` numbers a turn's events 1, 2, 3, ... (the SSE `id`); the process that runs
    the turn (it holds the turn's lease) is their only writer. A retry that takes a
    failed turn over replaces its events: a turn's events are those of its latest
    try. Events live as long as their turn (deleted with its conversation). `owner`
    is the turn's owner, held so by the database as a message's is (a composite
    foreign key on PostgreSQL, triggers on SQLite). Written only by `chat.turns`.
    """

    class Name(models.TextChoices):
        STARTED = "turn.started"
        DELTA = "message.delta"
        TOOL_CALL = "tool.call"
        TOOL_RESULT = "tool.result"
        DONE = "turn.done"
        FAILED = "turn.failed"
        CANCELLED = "turn.cancelled"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_turn_events"
    )
    turn = models.ForeignKey(
        ChatTurn,
        on_delete=models.CASCADE,
        related_name="events",
        db_index=False,  # served by turnevent_turn_seq_unique
    )
    seq = models.PositiveIntegerField()
    name = models.CharField(max_length=32, choices=Name.choices)
    data = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["turn", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["turn", "seq"], name="turnevent_turn_seq_unique"),
            models.CheckConstraint(condition=Q(seq__gte=1), name="turnevent_seq_gte_1"),
            models.CheckConstraint(
                condition=Q(
                    name__in=[
                        "turn.started",
                        "message.delta",
                        "tool.call",
                        "tool.result",
                        "turn.done",
                        "turn.failed",
                        "turn.cancelled",
                    ]
                ),
                name="turnevent_name_valid",
            ),
        ]

    def __str__(self):
        return f"{self.name} #{self.seq}"

    @property
    def is_last(self):
        return self.name in TERMINAL_EVENTS


TERMINAL_EVENTS = frozenset({TurnEvent.Name.DONE, TurnEvent.Name.FAILED, TurnEvent.Name.CANCELLED})


class MessageFeedback(models.Model):
    """A thumbs up or down on a message, from a ChatKit front end's `items.feedback`.

    One per message (a new vote replaces the old one). `owner` is the conversation's
    owner and the database holds it so, as for messages
    (chat/migrations/0004_chatkit.py); `conversation` is the message's.
    """

    class Kind(models.TextChoices):
        UP = "up"
        DOWN = "down"

    # DO_NOTHING: feedback goes with its conversation's row (ON DELETE CASCADE, see
    # the migration), which account deletion deletes first (chat_delete_all).
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.DO_NOTHING, related_name="message_feedback"
    )
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="feedback"
    )
    # DO_NOTHING: deleted with their conversation, first (chat.services); a cascade
    # from here would stop messages being deleted in bulk.
    message = models.OneToOneField(Message, on_delete=models.DO_NOTHING, related_name="feedback")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=["up", "down"]), name="messagefeedback_kind_valid"
            ),
        ]

    def __str__(self):
        return f"{self.kind} on message {self.message_id}"
