"""Conversation and message rules: the one place that writes them.

`message_append` is the only way a message is stored: it numbers messages under
the conversation's row lock, so `seq` follows commit order with no gap or repeat,
and `message_count` and `updated_at` never lose an update.
"""

import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import orjson
import psycopg
from django.db import IntegrityError, connections, router, transaction
from django.db.models import Q
from django.utils import timezone
from psycopg import sql

from core.errors import Conflict, DomainError, NotFound, Unprocessable
from core.text import text_problem

from .models import (
    CONTENT_MAX_LENGTH,
    CONVERSATION_TITLE_MAX_LENGTH,
    THREAD_STATUS_REASON_MAX_LENGTH,
    ChatTurn,
    Conversation,
    Message,
    MessageFeedback,
    ThreadStatus,
    TurnEvent,
)
from .selectors import conversations_of


class ConversationNotFound(NotFound):
    default_detail = "No such conversation."


class ConversationArchived(Conflict):
    default_detail = (
        'This conversation is archived: unarchive it (PATCH {"archived": false}) '
        "to continue it, or start a new one."
    )


class InvalidMessage(DomainError):
    default_detail = "The message is not valid."


class ThreadNotActive(Conflict):
    default_detail = "This thread is not active: it takes no new messages."


class ClientIdReused(Unprocessable):
    default_detail = (
        "This client_id was already used for a different message in this "
        "conversation; use a new client_id for a new message."
    )


def clean_conversation_title(title):
    return _checked(title, name="title", max_length=CONVERSATION_TITLE_MAX_LENGTH)


def clean_content(content):
    return _checked(content, name="content", max_length=CONTENT_MAX_LENGTH, min_length=1)


def _flag(value, *, name):
    if not isinstance(value, bool):
        raise InvalidMessage(f"{name} must be true or false.")
    return value


def _checked(value, **rules):
    problem = text_problem(value, **rules)
    if problem:
        raise InvalidMessage(problem)
    return value


def conversation_get(*, owner, conversation_id):
    try:
        return Conversation.objects.owned_by(owner).get(pk=int(conversation_id))
    except (Conversation.DoesNotExist, ValueError, TypeError, OverflowError):
        raise ConversationNotFound() from None


def conversation_create(*, owner, title="", archived=False, pinned=False):
    return Conversation.objects.create(
        owner=owner,
        title=clean_conversation_title(title),
        archived=_flag(archived, name="archived"),
        pinned=_flag(pinned, name="pinned"),
    )


def conversation_update(*, conversation, title=None, archived=None, pinned=None):
    """Change the given fields (None leaves one as it is). Not activity: `updated_at`
    stays, so archiving or pinning does not reorder the list by recency."""
    changed = []
    if title is not None:
        conversation.title = clean_conversation_title(title)
        changed.append("title")
    for name, value in (("archived", archived), ("pinned", pinned)):
        if value is not None:
            setattr(conversation, name, _flag(value, name=name))
            changed.append(name)
    if changed:
        conversation.save(update_fields=changed)
    return conversation


def conversation_set_thread_status(*, conversation, status, reason=None):
    """Store the status of the conversation's ChatKit thread: None (active),
    "locked" or "closed", with an optional reason (none for active). Changes one row
    only if something changed; not activity (`updated_at` stays)."""
    if status is not None and status not in ThreadStatus.values:
        raise InvalidMessage(f"A thread status is active, locked or closed, not {status!r}.")
    reason = (reason or "").strip() or None
    if status is None:
        reason = None
    if reason is not None and len(reason) > THREAD_STATUS_REASON_MAX_LENGTH:
        raise InvalidMessage(
            f"A thread status reason has at most {THREAD_STATUS_REASON_MAX_LENGTH} characters."
        )
    if (conversation.thread_status, conversation.thread_status_reason) != (status, reason):
        conversation.thread_status, conversation.thread_status_reason = status, reason
        conversation.save(update_fields=["thread_status", "thread_status_reason"])
    return conversation


@transaction.atomic
def conversation_transfer(*, conversation, new_owner):
    """Give `conversation` to `new_owner`, with all of its messages and turns.

    Only the conversation's row is written: the database moves its messages' and
    turns' owner along (chat/migrations/0003_owner_follows_conversation.py), so they
    can never disagree. Takes the row lock, as `message_append` does.
    """
    locked = Conversation.objects.select_for_update().get(pk=conversation.pk)
    locked.owner = new_owner
    locked.save(update_fields=["owner"])
    conversation.owner = new_owner
    return conversation


@transaction.atomic
def conversation_delete(*, conversation):
    """Delete the conversation with all of its messages and turns.

    Takes the conversation's row lock first, as `message_append` does, so an append
    either commits before the delete starts or finds the conversation gone. Then
    four DELETE statements on indexed columns, however long the conversation (its
    feedback goes with the conversation's row, chat/migrations/0004_chatkit.py):
    Django's own cascade would first load every message id (turns point at
    messages), a query per thousand messages.
    """
    conversation_delete_owned(owner=conversation.owner_id, conversation_id=conversation.pk)


@transaction.atomic
def conversation_delete_owned(*, owner, conversation_id):
    """`conversation_delete` by id: one of `owner`'s conversations, else ConversationNotFound.

    Checks the owner in the statement that takes the row lock, so deleting through
    the API costs no separate read.
    """
    if not 0 < conversation_id < 2**63:  # no such id; SQLite cannot even bind it
        raise ConversationNotFound()
    locked = conversations_of(owner).select_for_update().filter(pk=conversation_id)
    if not list(locked.order_by().values_list("pk")):
        raise ConversationNotFound()
    _delete_conversations([conversation_id])


def conversations_purge(*, conversation_ids, idle_before):
    """Delete those of `conversation_ids` that have had no activity since before
    `idle_before`, whole; returns (conversations, messages) deleted.

    Takes the row locks `conversation_delete` and `message_append` take, and checks
    the idleness under them: an append that commits first moves `updated_at` on, and
    PostgreSQL re-reads the row after the wait, so the conversation is kept whole
    with its new message; one that comes after finds the conversation gone and
    stores nothing. Keep the batch small: its rows stay locked until commit.

    On PostgreSQL it is one statement (PURGE_SQL). Outside a transaction, that
    statement is sent with its BEGIN and COMMIT as one message and commits without
    waiting for its WAL to reach the disk (`synchronous_commit = off`, for this
    transaction only): the rows stay locked only while the database deletes them,
    never while this process waits for a CPU between round trips or for an fsync
    (on a busy host those held them ten times longer, bench/README.md "History").
    A crash may forget the last few purges, never half of one; the next run
    deletes those conversations again.
    """
    connection = connections[router.db_for_write(Conversation)]
    if connection.vendor == "postgresql":
        purge = sql.SQL(PURGE_SQL).format(
            ids=sql.Literal([int(pk) for pk in conversation_ids]),
            idle_before=sql.Literal(idle_before),
        )
        if not connection.in_atomic_block:
            purge = sql.SQL(
                "BEGIN; SET LOCAL synchronous_commit = off; {purge}; COMMIT"
            ).format(purge=purge)
        connection.ensure_connection()
        with connection.connection.cursor() as cursor:
            try:
                cursor.execute(purge)
            except psycopg.Error:
                if not connection.in_atomic_block:
                    # The message's BEGIN left a failed transaction open: end it.
                    cursor.execute("ROLLBACK")
                raise
            while cursor.pgresult.ntuples == 0 and cursor.nextset():
                pass
            conversations, messages = cursor.fetchone()
        return conversations, messages
    with transaction.atomic(using=connection.alias):
        locked = list(
            Conversation.objects.select_for_update()
            .filter(pk__in=conversation_ids, updated_at__lt=idle_before)
            .values_list("pk", "message_count")
        )
        ids = [pk for pk, _ in locked]
        if ids:
            _delete_conversations(ids)
    return len(ids), sum(count for _, count in locked)


# `conversations_purge` on PostgreSQL (a psycopg.sql template): `_delete_conversations`
# after the lock, in one statement. Its parts share one snapshot; FOR UPDATE re-reads
# a row an append changed while it waited, and a conversation whose `updated_at`
# moved is left whole. The keys between these tables are checked at commit (deferred).
PURGE_SQL = """
WITH locked AS (
    SELECT id, message_count FROM chat_conversation
    WHERE id = ANY({ids}) AND updated_at < {idle_before}
    FOR UPDATE
), turns AS (
    SELECT id FROM chat_chatturn WHERE conversation_id IN (SELECT id FROM locked)
), events AS (
    DELETE FROM chat_turnevent WHERE turn_id IN (SELECT id FROM turns)
), deleted_turns AS (
    DELETE FROM chat_chatturn WHERE id IN (SELECT id FROM turns)
), messages AS (
    DELETE FROM chat_message WHERE conversation_id IN (SELECT id FROM locked)
), conversations AS (
    DELETE FROM chat_conversation WHERE id IN (SELECT id FROM locked)
)
SELECT count(*), coalesce(sum(message_count), 0) FROM locked
"""


def purge_candidates(*, idle_before, after=None, limit=100):
    """Up to `limit` conversations (of every owner) idle since before `idle_before`,
    the longest idle first, after the (updated_at, id) pair `after`: rows with `pk`,
    `updated_at` and `message_count`, read along the index conversation_activity."""
    rows = Conversation.objects.filter(updated_at__lt=idle_before)
    if after is not None:
        updated_at, pk = after
        rows = rows.filter(Q(updated_at__gt=updated_at) | Q(updated_at=updated_at, pk__gt=pk))
    return list(
        rows.order_by("updated_at", "id").values_list(
            "pk", "updated_at", "message_count", named=True
        )[:limit]
    )


def _delete_conversations(ids):
    """Call holding the conversations' row locks: their turns' events, turns, messages,
    themselves (their feedback goes with the conversation's row,
    chat/migrations/0004_chatkit.py).

    Four DELETE statements on indexed columns, however long the conversations:
    Django's own cascade would first load every message id (turns point at
    messages), a query per thousand messages.
    """
    _delete_rows(TurnEvent.objects.filter(turn__conversation_id__in=ids))
    _delete_rows(ChatTurn.objects.filter(conversation_id__in=ids))
    _delete_rows(Message.objects.filter(conversation_id__in=ids))
    _delete_rows(Conversation.objects.filter(pk__in=ids))


@transaction.atomic
def chat_delete_all(*, owner):
    """Delete every conversation, message and turn of `owner` (account deletion).

    Locks the owner's conversations first, for the reason `conversation_delete` does.
    """
    list(Conversation.objects.select_for_update().filter(owner=owner).values_list("pk"))
    _delete_rows(TurnEvent.objects.filter(owner=owner))
    _delete_rows(ChatTurn.objects.filter(owner=owner))
    _delete_rows(Message.objects.filter(owner=owner))
    _delete_rows(Conversation.objects.filter(owner=owner))


def messages_supersede(*, owner, conversation_id, message_ids):
    """Mark messages of one of `owner`'s conversations superseded (a ChatKit retry).

    They stay in the REST log with their seq; ChatKit's items and the agent's history
    leave them out. Already superseded ones keep their first time. Returns how many
    were marked now.
    """
    return (
        Message.objects.owned_by(owner)
        .filter(conversation_id=conversation_id, pk__in=message_ids, superseded_at__isnull=True)
        .update(superseded_at=timezone.now())
    )


def feedback_set(*, message, kind):
    """Store `kind` ("up" or "down") as the feedback on `message`, replacing an earlier one."""
    if kind not in MessageFeedback.Kind.values:
        raise InvalidMessage(f"kind must be one of {', '.join(MessageFeedback.Kind.values)}.")
    feedback, _ = MessageFeedback.objects.update_or_create(
        message=message,
        defaults={
            "kind": kind,
            "owner_id": message.owner_id,
            "conversation_id": message.conversation_id,
            "created_at": timezone.now(),
        },
    )
    return feedback


def _delete_rows(queryset):
    """DELETE ... WHERE, children first, without Django's collector.

    Only for the chat tables, whose every child is deleted explicitly before its
    parent, and which have no delete signals.
    """
    return queryset._raw_delete(queryset.db)


def message_append(
    *,
    owner,
    conversation_id,
    role,
    content,
    tool_calls=None,
    client_id=None,
    refuse_archived=False,
):
    """Append a message to one of `owner`'s conversations.

    With `refuse_archived`, an archived conversation raises `ConversationArchived`
    instead (checked under the row lock, so an archive that commits first wins): a
    chat turn never continues a conversation the user put aside.

    Returns `(message, created)`. Given a `client_id` already stored in that
    conversation, returns the stored message with `created=False`, or raises
    `ClientIdReused` if role, content or tool_calls differ: a retried append never
    stores twice, even when the retries race. Raises `ConversationNotFound` if the
    conversation is not the owner's or is deleted meanwhile.
    """
    content = clean_content(content)
    if role not in Message.Role.values:
        raise InvalidMessage(f"role must be one of {', '.join(Message.Role.values)}.")
    if client_id is not None and not isinstance(client_id, uuid.UUID):
        try:
            client_id = uuid.UUID(str(client_id))
        except ValueError:
            raise InvalidMessage("client_id must be a UUID.") from None
    if connections[router.db_for_write(Message)].vendor == "postgresql":
        return _append_in_one_statement(
            owner=owner,
            conversation_id=conversation_id,
            role=role,
            content=content,
            tool_calls=tool_calls,
            client_id=client_id,
            refuse_archived=refuse_archived,
        )
    try:
        with transaction.atomic():
            return _append_locked(
                owner=owner,
                conversation_id=conversation_id,
                role=role,
                content=content,
                tool_calls=tool_calls,
                client_id=client_id,
                refuse_archived=refuse_archived,
            )
    except IntegrityError:
        # Only a conversation deleted between our lock and our insert gets here
        # (the lock serializes appends, so seq and client_id cannot collide).
        raise ConversationNotFound() from None


# The lock, the insert and the count in one statement (PostgreSQL). The SELECT ...
# FOR UPDATE takes the conversation's row lock and numbers the message from the
# newest version of the row (READ COMMITTED re-reads a row it waited for), the
# INSERT stores it, the UPDATE counts it; all commit together or not at all, so
# seq stays gap-free and message_count exact. The time is read once the lock is
# held (clock_timestamp() in the locking SELECT, evaluated again after a wait), so
# created_at follows seq. A client_id already stored inserts nothing (ON CONFLICT
# on its unique index, checked against committed rows, not the snapshot) and so
# counts nothing: the statement answers no row and never fails, so inside a
# caller's transaction it needs no savepoint.
APPEND_SQL = """
WITH conversation AS (
    SELECT id, owner_id, message_count + 1 AS seq,
           GREATEST(updated_at, clock_timestamp()) AS at
    FROM chat_conversation
    WHERE id = %(conversation_id)s AND owner_id = %(owner_id)s
        AND NOT (archived AND %(refuse_archived)s)
    FOR UPDATE
), message AS (
    INSERT INTO chat_message
        (conversation_id, owner_id, seq, role, content, tool_calls, client_id, created_at)
    SELECT id, owner_id, seq, %(role)s, %(content)s, %(tool_calls)s, %(client_id)s, at
    FROM conversation
    ON CONFLICT (conversation_id, client_id) WHERE client_id IS NOT NULL DO NOTHING
    RETURNING id, conversation_id, owner_id, seq, created_at, tool_calls
)
UPDATE chat_conversation
SET message_count = message.seq, updated_at = message.created_at
FROM message
WHERE chat_conversation.id = message.conversation_id
RETURNING message.id, message.conversation_id, message.owner_id, message.seq,
    message.created_at, message.tool_calls
"""


# The columns of a message row given to `CheckedMessages.write`, in order.
CHECKED_MESSAGE_COLUMNS = (
    "conversation_id",
    "owner_id",
    "seq",
    "role",
    "content",
    "tool_calls",
    "client_id",
    "created_at",
    "superseded_at",
)
_TOOL_CALLS = CHECKED_MESSAGE_COLUMNS.index("tool_calls")


# How large the search index's pending list may grow during an import before
# PostgreSQL merges it (`CheckedMessages`, which merges it once at the end).
IMPORT_PENDING_LIST = "256MB"


class CheckedMessages:
    """Stores message rows (tuples in CHECKED_MESSAGE_COLUMNS order) as they are: for
    an account import, which checks the next batch while this stores the last.

    The caller has checked each row with the API's rules, numbered `seq` from 1
    without gaps per conversation, and keeps each conversation's `message_count`.
    Use as a context manager inside the import's transaction, and call `wait()`
    before anything else uses the database: `write(rows)` returns at once while, on
    PostgreSQL, a thread COPYs the rows on the transaction's own connection (no SQL
    to build per row; the database's work, the search vector and the indexes, is
    most of an import's time, and the caller's checking now overlaps it).
    Elsewhere, `write` bulk-inserts before it returns.

    The search index (GIN) takes the import's entries in its pending list, as large
    as they need (`gin_pending_list_limit`, for this transaction only), and merges
    them into the index once, key by key, when the import ends
    (`gin_clean_pending_list`, if the database role may: it owns the index),
    instead of a merge every 4 MB of entries. With the overlap above, 100,000
    natural-text messages among 5,000,000 import in 7.5 s instead of 11.8
    (bench/README.md, "History"). Meanwhile other searches also read the import's
    pending entries, for the seconds the import lasts.
    """

    def __init__(self):
        self.connection = connections[router.db_for_write(Message)]
        self.pending = None
        self.writer = None
        if self.connection.vendor == "postgresql":
            self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-copy")

    def __enter__(self):
        if self.writer is not None:
            with self.connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL gin_pending_list_limit = '{IMPORT_PENDING_LIST}'")
        return self

    def __exit__(self, exc_type, exc, traceback):
        try:
            self.wait()
        except Exception:
            if exc is None:
                raise
            # The transaction is being rolled back for `exc`, the error to report.
        finally:
            if self.writer is not None:
                self.writer.shutdown()
        if exc is None and self.writer is not None:
            with self.connection.cursor() as cursor:
                cursor.execute(
                    "SELECT gin_clean_pending_list(c.oid) FROM pg_class AS c"
                    " WHERE c.oid = to_regclass('message_owner_search')"
                    " AND pg_has_role(c.relowner, 'USAGE')"
                )

    def write(self, rows):
        self.wait()
        if self.writer is None:
            Message.objects.bulk_create(
                [Message(**dict(zip(CHECKED_MESSAGE_COLUMNS, row, strict=True))) for row in rows],
                batch_size=1000,
            )
            return
        self.connection.ensure_connection()
        self.pending = self.writer.submit(_copy_messages, self.connection.connection, rows)

    def wait(self):
        """Returns when the rows written so far are stored (or raises their error)."""
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.result()


def _copy_messages(psycopg_connection, rows):
    columns = ", ".join(CHECKED_MESSAGE_COLUMNS)
    with psycopg_connection.cursor() as cursor:
        with cursor.copy(f"COPY chat_message ({columns}) FROM STDIN") as copy:
            for row in rows:
                if row[_TOOL_CALLS] is not None:
                    row = list(row)
                    row[_TOOL_CALLS] = orjson.dumps(row[_TOOL_CALLS]).decode()
                copy.write_row(row)


def conversations_set_message_counts(counts):
    """Set the `message_count` of conversations (a dict pk → count) whose messages an
    account import stored with `CheckedMessages`; call inside its transaction.
    One statement on PostgreSQL (bulk_update's CASE per row costs more to plan than
    to run)."""
    if not counts:
        return
    connection = connections[router.db_for_write(Conversation)]
    if connection.vendor != "postgresql":
        conversations = [Conversation(pk=pk, message_count=n) for pk, n in counts.items()]
        Conversation.objects.bulk_update(conversations, ["message_count"], batch_size=500)
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE chat_conversation AS c SET message_count = counted.n"
            " FROM unnest(%s::bigint[], %s::integer[]) AS counted(id, n)"
            " WHERE c.id = counted.id",
            [list(counts), list(counts.values())],
        )


def _append_in_one_statement(
    *, owner, conversation_id, role, content, tool_calls, client_id, refuse_archived
):
    """`message_append` on PostgreSQL: one statement (APPEND_SQL), in the caller's
    transaction if it has one (no savepoint) or as its own.

    A `client_id` already stored inserts nothing; the stored message is then read
    and compared, as in `_append_locked`. The message returned carries `tool_calls`
    as stored (jsonb orders an object's keys), so it equals the message read back.
    """
    try:
        conversation_id = int(conversation_id)
        if not 0 < conversation_id < 2**63:
            raise ValueError
    except (TypeError, ValueError):
        raise ConversationNotFound() from None
    connection = connections[router.db_for_write(Message)]
    params = {
        "conversation_id": conversation_id,
        "owner_id": getattr(owner, "pk", owner),
        "role": role,
        "content": content,
        "tool_calls": Message._meta.get_field("tool_calls").get_db_prep_save(
            tool_calls, connection
        ),
        "client_id": client_id,
        "refuse_archived": refuse_archived,
    }
    with connection.cursor() as cursor:
        cursor.execute(APPEND_SQL, params)
        row = cursor.fetchone()
    if row is None:
        return _not_appended(
            owner, conversation_id, role, content, tool_calls, client_id, refuse_archived
        )
    message_id, conversation_pk, owner_id, seq, created_at, stored_tool_calls = row
    message = Message(
        id=message_id,
        conversation_id=conversation_pk,
        owner_id=owner_id,
        seq=seq,
        role=role,
        content=content,
        tool_calls=None
        if stored_tool_calls is None
        else json.loads(stored_tool_calls, parse_int=_stored_integer),
        client_id=client_id,
        created_at=created_at,
    )
    message._state.adding = False
    message._state.db = connection.alias
    return message, True


def _stored_integer(text):
    """An integer of jsonb's text; one beyond 64 bits as a float.

    jsonb keeps numbers as numeric and writes them out in full: a float sent as
    1.4e154 comes back as 155 digits. As an int no JSON writer of ours (orjson)
    could answer it; as a float it is what the client sent.
    """
    value = int(text)
    return value if -(2**63) <= value < 2**64 else float(text)


def _not_appended(owner, conversation_id, role, content, tool_calls, client_id, refuse_archived):
    """Why APPEND_SQL stored nothing: the message stored earlier with `client_id`
    (`_replayed`), or an archived (`ConversationArchived`) or missing conversation."""
    conversation = conversations_of(owner).filter(pk=conversation_id)
    if client_id is not None:
        stored = Message.objects.filter(
            owner=owner, conversation_id=conversation_id, client_id=client_id
        ).first()
        if stored is not None:
            return _replayed(stored, role, content, tool_calls)
    if refuse_archived and conversation.exists():
        raise ConversationArchived()
    raise ConversationNotFound()


def _replayed(stored, role, content, tool_calls):
    """`(stored, False)` for a retried append of the same message; ClientIdReused if
    its client_id was stored with another role, content or tool_calls."""
    if (stored.role, stored.content, stored.tool_calls) != (role, content, tool_calls):
        raise ClientIdReused()
    return stored, False


def _append_locked(
    *, owner, conversation_id, role, content, tool_calls, client_id, refuse_archived
):
    """Call inside a transaction: takes the conversation's row lock first."""
    try:
        conversation_id = int(conversation_id)
    except (TypeError, ValueError):
        raise ConversationNotFound() from None
    conversation = (
        Conversation.objects.select_for_update()
        .filter(owner=owner, pk=conversation_id)
        .only("id", "owner_id", "updated_at", "message_count", "archived")
        .first()
    )
    if conversation is None:
        raise ConversationNotFound()
    if refuse_archived and conversation.archived:
        raise ConversationArchived()
    if client_id is not None:
        stored = conversation.messages.filter(client_id=client_id).first()
        if stored is not None:
            return _replayed(stored, role, content, tool_calls)
    now = timezone.now()
    seq = conversation.message_count + 1
    message = Message.objects.create(
        conversation_id=conversation.pk,
        owner_id=conversation.owner_id,
        seq=seq,
        role=role,
        content=content,
        tool_calls=tool_calls,
        client_id=client_id,
        created_at=now,
    )
    Conversation.objects.filter(pk=conversation.pk).update(
        message_count=seq, updated_at=max(now, conversation.updated_at)
    )
    return message, True
