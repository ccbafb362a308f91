from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Length
from django.db.models.lookups import GreaterThanOrEqual, LessThanOrEqual
from django.utils import timezone

CONVERSATION_TITLE_MAX_LENGTH = 255
CONTENT_MAX_LENGTH = 10_000


class ConversationQuerySet(models.QuerySet):
    def owned_by(self, user):
        return self.filter(owner=user)


class Conversation(models.Model):
    """A chat between one user and the assistant.

    `updated_at` is the time of the last activity and `message_count` the number of
    messages; both move only through `chat.services.message_append`, under the
    conversation's row lock.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="conversations",
        db_index=False,  # served by conversation_owner_activity
    )
    title = models.CharField(max_length=CONVERSATION_TITLE_MAX_LENGTH, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    message_count = models.PositiveIntegerField(default=0)

    objects = ConversationQuerySet.as_manager()

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [
            models.Index(fields=["owner", "updated_at", "id"], name="conversation_owner_activity"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=LessThanOrEqual(Length("title"), CONVERSATION_TITLE_MAX_LENGTH),
                name="conversation_title_max_length",
            ),
            models.CheckConstraint(
                condition=Q(message_count__gte=0), name="conversation_message_count_gte_0"
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

    conversation = models.ForeignKey(
        Conversation,
        on_delete=models.CASCADE,
        related_name="messages",
        db_index=False,  # served by message_conversation_seq_unique
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="messages"
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
    step and each tool result storable once only. Changed only by `chat.turns`.
    """

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

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
                condition=Q(status__in=["running", "succeeded", "failed"]),
                name="chatturn_status_valid",
            ),
        ]

    def __str__(self):
        return f"turn {self.pk} ({self.status})"


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
