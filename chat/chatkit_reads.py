"""The read-only ChatKit requests answered without the SDK's models: `threads.list`,
`items.list` and `threads.get_by_id`.

Building the SDK's pydantic models for every thread and item and serializing them
cost about as much again as the rest of a request (1.8x, then 3.5x with tool steps,
the REST equivalents; bench/chatkit.py). These answers are the same JSON, written
with orjson from selector rows: every key and value the SDK's own answer has
(`ChatKitServer._serialize`: by alias, `None`s left out), in the shapes of
`chatkit.types.Thread`, `Page[Thread]` and `Page[ThreadItem]`. The tests compare
each with what the SDK answers for the same request (chat/tests/test_chatkit.py).

Only a request of exactly the expected shape is answered here; anything else (a
limit given as a string, an unknown key, a body that is not JSON) goes to the
SDK, which parses it as it always does and refuses what it refuses. Scope and
not-found answers are the store's: another user's thread or cursor, or a missing
one, raises the SDK's `NotFoundError`.

Queries: `items.list` and `threads.get_by_id` read the page and the results of its
tool steps in one statement (`selectors.item_page_sql`: one walk of the
(conversation, seq) index); `items.list` checks the
owner on the page's rows, as the REST message page does, and looks the conversation
up only when the page is empty. The thread reads are compiled once
(`core.compiled`).
"""

import functools
from datetime import UTC

import orjson
from chatkit.store import NotFoundError
from django.db import connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from core.compiled import CompiledQueries, CompiledQuery

from . import selectors
from .agents.base import ToolCall
from .chatkit_store import ITEM_PREFIX, message_key, task_fields
from .models import Message

DEFAULT_PAGE_SIZE = 20  # the SDK's (chatkit.server.DEFAULT_PAGE_SIZE)
ORDERS = ("asc", "desc")
OPTIONS = orjson.OPT_UTC_Z
EMPTY_ITEMS = {"data": [], "has_more": False}

_threads = CompiledQueries()
THREAD_ROW = CompiledQuery(selectors.thread_row())


def answer(raw: bytes, user) -> bytes | None:
    """The JSON answer of a read-only request, or None to leave it to the SDK."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, dict) or not set(body) <= {"type", "params", "metadata"}:
        return None
    params = body.get("params")
    reader = READERS.get(body.get("type"))
    if (
        reader is None
        or not isinstance(params, dict)
        or not isinstance(body.get("metadata", {}), dict)
    ):
        return None
    function, keys = reader
    if not set(params) <= keys or not _valid(params):
        return None
    return function(user, params)


def _valid(params):
    """The values the SDK would take as they are: otherwise it should parse them."""
    limit = params.get("limit")
    if limit is not None and (type(limit) is not int):
        return False
    if params.get("order", "desc") not in ORDERS:
        return False
    return all(
        params.get(name) is None or type(params[name]) is str for name in ("after", "thread_id")
    ) and ("thread_id" not in params or type(params["thread_id"]) is str)


def _limit(params, most):
    return max(1, min(params.get("limit") or DEFAULT_PAGE_SIZE, most))


def _thread_id(value):
    if not value.isdigit() or not 0 < int(value) < 2**63:
        raise NotFoundError(f"Thread {value!r} not found.")
    return int(value)


# --- threads -------------------------------------------------------------------------


def _status(row):
    if row.thread_status is None:
        return {"type": "active"}
    status = {"type": row.thread_status}
    if row.thread_status_reason is not None:
        status["reason"] = row.thread_status_reason
    return status


def _thread(row, items=EMPTY_ITEMS):
    data = {
        "id": str(row.id),
        "created_at": row.created_at,
        "status": _status(row),
        "metadata": {},
        "items": items,
    }
    if row.title:
        data["title"] = row.title
    return data


def _page(data, has_more, after):
    page = {"data": data, "has_more": has_more}
    if after is not None:
        page["after"] = after
    return page


def threads_list(user, params):
    """`threads.list`: most recent activity first for "desc"; `after` a thread id."""
    limit = _limit(params, 100)
    descending = params.get("order", "desc") == "desc"
    values = {"owner_id": user.pk}
    after = params.get("after")
    if after:
        cursor = THREAD_ROW.first(owner_id=user.pk, thread_id=_thread_id(after))
        if cursor is None:
            raise NotFoundError(f"Thread {after!r} not found.")
        values.update(after_updated_at=cursor.updated_at, after_id=cursor.id)
    query = _threads.get(functools.partial(selectors.thread_rows, limit, descending, bool(after)))
    rows = query.all(**values)
    page = [_thread(row) for row in rows[:limit]]
    return orjson.dumps(
        _page(page, len(rows) > limit, page[-1]["id"] if page else None), option=OPTIONS
    )


def thread_get(user, params):
    """`threads.get_by_id`: the thread and its first 20 items (as the SDK loads them)."""
    thread_id = _thread_id(params["thread_id"])
    row = THREAD_ROW.first(owner_id=user.pk, thread_id=thread_id)
    if row is None:
        raise NotFoundError(f"Thread {params['thread_id']!r} not found.")
    items = _items(user, thread_id, DEFAULT_PAGE_SIZE, False, None, owner_checked=True)
    return orjson.dumps(_thread(row, items), option=OPTIONS)


# --- items ---------------------------------------------------------------------------


def items_list(user, params):
    """`items.list`: "desc" (the default) newest first; `after` an item id."""
    thread_id = _thread_id(params["thread_id"])
    descending = params.get("order", "desc") == "desc"
    after_seq = None
    if params.get("after"):
        after_seq = (
            Message.objects.filter(
                conversation_id=thread_id,
                owner_id=user.pk,
                role__in=selectors.CHATKIT_ITEM_ROLES,
                superseded_at__isnull=True,
                **message_key(params["after"]),
            )
            .order_by()
            .values_list("seq", flat=True)
            .first()
        )
        if after_seq is None:
            raise NotFoundError(f"Item {params['after']!r} not found.")
    page = _items(user, thread_id, _limit(params, 1000), descending, after_seq)
    return orjson.dumps(page, option=OPTIONS)


def _items(user, thread_id, limit, descending, after_seq, owner_checked=False):
    sql = selectors.item_page_sql(
        connection.vendor, descending=descending, after=after_seq is not None
    )
    params = [thread_id, *([] if after_seq is None else [after_seq]), limit + 1]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    items = [row for row in rows if row[3] != Message.Role.TOOL]
    if not owner_checked:
        # A message's owner is its conversation's (the database holds it): the page's
        # rows say whose thread this is; an empty page looks the thread up.
        if items and items[0][1] != user.pk:
            raise NotFoundError(f"Thread {thread_id!r} not found.")
        if not items and THREAD_ROW.first(owner_id=user.pk, thread_id=thread_id) is None:
            raise NotFoundError(f"Thread {thread_id!r} not found.")
    items.sort(key=lambda row: row[2], reverse=descending)
    has_more = len(items) > limit
    items = items[:limit]
    results = [(row[2], orjson.loads(row[5])) for row in rows if row[3] == Message.Role.TOOL]
    if results:
        results.sort()
    data = [_item(row, str(thread_id), results) for row in items]
    return _page(data, has_more, data[-1]["id"] if data else None)


def _created(value):
    """A timestamp as the ORM would give it (SQLite's come as naive UTC text)."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if timezone.is_naive(value):
        value = value.replace(tzinfo=UTC)
    return value


def _item(row, thread_id, results):
    pk, _, seq, role, content, tool_calls, created_at = row
    item = {"id": f"{ITEM_PREFIX}{pk}", "thread_id": thread_id, "created_at": _created(created_at)}
    if role == Message.Role.USER:
        item.update(
            type="user_message",
            content=[{"type": "input_text", "text": content}],
            attachments=[],
            inference_options={},
        )
        return item
    entries = orjson.loads(tool_calls) if tool_calls is not None else None
    calls = [
        ToolCall.from_json(e)
        for e in (entries if isinstance(entries, list) else [])
        if isinstance(e, dict) and e.get("name")
    ]
    if not calls:
        item.update(
            type="assistant_message",
            content=[{"annotations": [], "text": content, "type": "output_text"}],
        )
        return item
    found = _step_results(seq, calls, results)
    tasks = []
    for call in calls:
        title, text, status = task_fields(call, found.get(call.id))
        tasks.append(
            {"status_indicator": status, "type": "custom", "title": title, "content": text}
        )
    item.update(
        type="workflow",
        workflow={
            "type": "custom",
            "tasks": tasks,
            "summary": {"title": content},
            "expanded": False,
        },
    )
    return item


def _step_results(seq, calls, results):
    """{call id: its result entries} from the first tool messages after `seq` that
    answer each call (as `chatkit_store.match_results`)."""
    wanted = {call.id for call in calls}
    found = {}
    for result_seq, entries in results:
        if result_seq <= seq:
            continue
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict):
                continue
            call_id = str(entry.get("id", ""))
            if call_id in wanted and call_id not in found:
                found[call_id] = entries
        if len(found) == len(wanted):
            break
    return found


READERS = {
    "threads.list": (threads_list, {"limit", "order", "after"}),
    "items.list": (items_list, {"thread_id", "limit", "order", "after"}),
    "threads.get_by_id": (thread_get, {"thread_id"}),
}
