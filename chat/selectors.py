"""Reads of conversations and messages, each written once: the API, the turn, the
admin and the MCP/ChatKit doors call these.

Every selector takes the owner (a user, a pk, or a `core.compiled.Param` standing
for one in a compiled read), except `message_page_rows`, which reads one
conversation's messages by (conversation, seq) alone and leaves the owner check to
its caller: a message's owner is its conversation's, which the database holds
(chat/migrations/0003_owner_follows_conversation.py).
"""

from operator import attrgetter

from django.db.models import Q, TextField
from django.db.models.functions import Cast

from core.compiled import Param

from .models import Conversation, Message

# The API's conversation and message: serializer fields, page columns, output keys.
CONVERSATION_FIELDS = (
    "id",
    "title",
    "created_at",
    "updated_at",
    "message_count",
    "archived",
    "pinned",
)
conversation_values = attrgetter(*CONVERSATION_FIELDS)
MESSAGE_FIELDS = (
    "id",
    "conversation",
    "seq",
    "role",
    "content",
    "tool_calls",
    "client_id",
    "created_at",
    "superseded_at",
)
# Where each output field is read from on a page row (message_page_rows).
MESSAGE_ROW_ATTRIBUTES = tuple(
    {"conversation": "conversation_id", "tool_calls": "tool_calls_json"}.get(name, name)
    for name in MESSAGE_FIELDS
)

OWNER = Param("owner_id", Conversation._meta.get_field("owner"))
CONVERSATION = Param("conversation_id", Message._meta.get_field("conversation"))
AFTER_SEQ = Param("after_seq", Message._meta.get_field("seq"))
ARCHIVED = Param("archived", Conversation._meta.get_field("archived"))


def conversations_of(owner):
    """The owner's conversations, most recent activity first."""
    return Conversation.objects.owned_by(owner)


def conversation_page_rows(owner=OWNER, archived=ARCHIVED):
    """A list page's rows (named tuples of CONVERSATION_FIELDS): the owner's archived
    conversations, or the others. The list pages them pinned first, then by most
    recent activity, along the index conversation_owner_list."""
    return (
        conversations_of(owner)
        .filter(archived=archived)
        .values_list(*CONVERSATION_FIELDS, named=True)
    )


def conversation_search_rows(owner, *, search, archived):
    """Rows as `conversation_page_rows`, of the owner's conversations (archived ones,
    or the others) whose title or a message matches `search`."""
    return (
        conversations_of(owner)
        .filter(archived=archived)
        .search(search, owner=owner)
        .values_list(*CONVERSATION_FIELDS, named=True)
    )


def messages_of(owner):
    """The owner's messages, in every conversation."""
    return Message.objects.owned_by(owner)


def message_search_rows(owner, *, search=None):
    """Page rows (as `message_page_rows`) of the owner's messages, in every
    conversation, that match `search` (all of them without one)."""
    messages = messages_of(owner)
    return _message_rows(messages.search(search) if search else messages)


def message_page_rows(*, after):
    """A page's rows of the conversation given as the value `conversation_id` (and with
    `after`, only those whose seq is above the value `after_seq`), with `owner_id`
    for the caller's check and the tool calls as their stored JSON text.

    No owner in the WHERE clause: with it, PostgreSQL may read the owner's index and
    sort, instead of walking (conversation, seq) in order.
    """
    messages = Message.objects.filter(conversation=CONVERSATION)
    if after:
        messages = messages.filter(seq__gt=AFTER_SEQ)
    return _message_rows(messages)


def messages_in(conversation_ids):
    """Page rows (as `message_page_rows`) of the messages of these conversations; the
    caller chose conversations of one owner, whose messages are that owner's."""
    return _message_rows(Message.objects.filter(conversation_id__in=conversation_ids))


def after_message(conversation_id, seq):
    """The condition "after message `seq` of `conversation_id`" in (conversation, seq)
    order: a keyset step through several conversations' messages."""
    return Q(conversation_id__gt=conversation_id) | Q(conversation_id=conversation_id, seq__gt=seq)


def _message_rows(messages):
    """`messages` as named tuples of MESSAGE_ROW_ATTRIBUTES and `owner_id`, the tool
    calls as their stored JSON text."""
    messages = messages.annotate(tool_calls_json=Cast("tool_calls", TextField()))
    columns = [name for name in MESSAGE_ROW_ATTRIBUTES if name != "tool_calls_json"]
    return messages.values_list(*columns, "owner_id", "tool_calls_json", named=True)


# --- The ChatKit door (chat/chatkit_store.py): keyset reads, never OFFSET ----------

# What an item is built from: page rows, not model instances (a fifth of the time of
# a page went to building Messages).
ITEM_FIELDS = ("pk", "conversation_id", "seq", "role", "content", "tool_calls", "created_at")
# Roles a ChatKit thread shows as items; `tool` results are folded into their step's
# item and `system` messages are not shown.
CHATKIT_ITEM_ROLES = (Message.Role.USER, Message.Role.ASSISTANT)


def thread_page(owner, *, limit, after=None, descending=True):
    """Up to `limit` + 1 of the owner's conversations in activity order, after the
    conversation `after` (one the caller owns, or None), from the cursor's key, along
    the index conversation_owner_activity."""
    conversations = conversations_of(owner)
    if after is not None:
        key = Q(updated_at=after.updated_at) & (
            Q(pk__lt=after.pk) if descending else Q(pk__gt=after.pk)
        )
        if descending:
            conversations = conversations.filter(Q(updated_at__lt=after.updated_at) | key)
        else:
            conversations = conversations.filter(Q(updated_at__gt=after.updated_at) | key)
    order = ("-updated_at", "-id") if descending else ("updated_at", "id")
    return list(conversations.order_by(*order)[: limit + 1])


def item_messages(conversation_id, *, limit, after_seq=None, descending=False):
    """Up to `limit` + 1 of a conversation's messages that are ChatKit items (user
    and assistant, not superseded), as rows of ITEM_FIELDS, in seq order from
    `after_seq`: walks the (conversation, seq) index. The caller checks the
    conversation is the user's."""
    messages = Message.objects.filter(
        conversation_id=conversation_id,
        role__in=CHATKIT_ITEM_ROLES,
        superseded_at__isnull=True,
    )
    if after_seq is not None:
        messages = messages.filter(**{"seq__lt" if descending else "seq__gt": after_seq})
    messages = messages.order_by("-seq" if descending else "seq")
    return list(messages.values_list(*ITEM_FIELDS, named=True)[: limit + 1])


STEP_REACH = 64


def step_results(conversation_id, steps, *, reach=STEP_REACH):
    """The `tool` messages that may answer the given assistant steps (messages with
    tool_calls), in seq order. A turn stores each step's results right after it, so
    they are looked for among the `reach` messages after the steps; the caller
    matches them to calls (call ids repeat across turns)."""
    if not steps:
        return []
    seqs = [step.seq for step in steps]
    return list(
        Message.objects.filter(
            conversation_id=conversation_id,
            role=Message.Role.TOOL,
            seq__gt=min(seqs),
            seq__lte=max(seqs) + reach,
        )
        .order_by("seq")
        .values_list(*ITEM_FIELDS, named=True)
    )


def turn_messages(conversation_id, *, first_seq, last_seq):
    """A conversation's messages numbered first_seq..last_seq (a turn's), in order."""
    return list(
        Message.objects.filter(
            conversation_id=conversation_id, seq__gte=first_seq, seq__lte=last_seq
        ).order_by("seq")
    )


# --- The ChatKit door's read-only answers (chat/chatkit_reads.py) --------------------

THREAD_FIELDS = (
    "id",
    "title",
    "created_at",
    "updated_at",
    "thread_status",
    "thread_status_reason",
)
AFTER_UPDATED = Param("after_updated_at", Conversation._meta.get_field("updated_at"))
AFTER_ID = Param("after_id", Conversation._meta.get_field("id"))
THREAD_ID = Param("thread_id", Conversation._meta.get_field("id"))


def thread_rows(limit, descending, after):
    """Up to `limit` + 1 of the owner's (Param `owner_id`) conversations as rows of
    THREAD_FIELDS, in activity order, after the cursor (Params `after_updated_at`,
    `after_id`) when `after`: the keyset walk of `thread_page`, for `CompiledQuery`
    (one per limit, direction and cursor presence)."""
    conversations = conversations_of(OWNER)
    if after:
        if descending:
            key = Q(updated_at__lt=AFTER_UPDATED) | Q(updated_at=AFTER_UPDATED, id__lt=AFTER_ID)
        else:
            key = Q(updated_at__gt=AFTER_UPDATED) | Q(updated_at=AFTER_UPDATED, id__gt=AFTER_ID)
        conversations = conversations.filter(key)
    order = ("-updated_at", "-id") if descending else ("updated_at", "id")
    return conversations.order_by(*order).values_list(*THREAD_FIELDS, named=True)[: limit + 1]


def thread_row():
    """The owner's (Param `owner_id`) conversation `thread_id` (Param) as a row of
    THREAD_FIELDS, for `CompiledQuery`."""
    return (
        conversations_of(OWNER)
        .filter(pk=THREAD_ID)
        .order_by()
        .values_list(*THREAD_FIELDS, named=True)
    )


def item_page_sql(vendor, *, descending, after):
    """One statement for a page of ChatKit items with the results of their tool steps:
    a conversation's messages that are not `system` and not superseded, in seq order
    from `after_seq`, along the (conversation, seq) index, up to and with the
    (`limit` + 1)-th item message (user or assistant). A step's results are stored
    right after it, so they are among these rows (a count in a window: PostgreSQL 15
    stops the scan at the first row past the count, its "run condition"; SQLite reads
    the conversation to its end). Rows: (id, owner_id, seq, role, content, tool_calls
    as JSON text or NULL, created_at), in no particular order. Parameters, in order:
    conversation id, [after seq,] limit + 1. Written as SQL because the ORM has no
    filter on a window function.
    """
    tool_calls = "tool_calls::text" if vendor == "postgresql" else "tool_calls"
    direction = "DESC" if descending else "ASC"
    after_clause = f"AND seq {'<' if descending else '>'} %s" if after else ""
    return f"""
        SELECT id, owner_id, seq, role, content, tool_calls, created_at FROM (
            SELECT id, owner_id, seq, role, content, {tool_calls} AS tool_calls, created_at,
                COUNT(*) FILTER (WHERE role IN ('user', 'assistant'))
                    OVER (ORDER BY seq {direction}) AS items
            FROM chat_message
            WHERE conversation_id = %s AND role <> 'system' AND superseded_at IS NULL
                {after_clause}
        ) page
        WHERE items <= %s
    """
