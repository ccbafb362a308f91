"""A chat turn's events as Server-Sent Events, followed from the database.

Every stream is a replay of the turn's `TurnEvent` rows after a given id, then a
follow of the rows a running turn writes, whichever process runs it, until its
last event (`turn.done`, `turn.failed`, `turn.cancelled`). The database is the
channel: a follower reads new rows every `POLL_SECONDS`; a turn run by this very
process wakes its followers when it wrote (`chat.events.listen`), so they read
at once and do not poll while it is silent. A follower sleeps until then, never
on a short tick: hundreds of open streams cost nothing while they wait. While
nothing is sent, a comment goes out every `KEEPALIVE_SECONDS`. A stream never
outlives its turn's lease: once the lease is over and no try holds the turn, the
stream ends (the turn's status says why: a turn whose process died counts as
failed).

Under ASGI (`chatproject.asgi`) the stream is an async iterator that holds no
thread while it waits (its reads run in a worker thread); under WSGI it is a
plain iterator, holding its server thread for as long as the stream is open.
A client that goes away only ends its stream: the turn runs on.
"""

import asyncio
import threading
import time

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.db.models import TextField
from django.db.models.functions import Cast
from django.http import StreamingHttpResponse
from django.utils import timezone

from . import events
from .models import TERMINAL_EVENTS, ChatTurn, TurnEvent

POLL_SECONDS = 0.25
# A follower of a turn run in this process reads at least this often anyway.
LOCAL_READ_SECONDS = 1
KEEPALIVE_SECONDS = 10
KEEPALIVE = b": keep-alive\n\n"


def frame(seq, name, data):
    """One SSE event; `data` is one line of JSON text."""
    return f"id: {seq}\nevent: {name}\ndata: {data}\n\n".encode()


class Follower:
    """Reads the events of one turn after `after`, in order, each once."""

    def __init__(self, turn, after):
        self.turn_pk = turn.pk
        self.after = after
        self.lease = turn.lease_expires_at if turn.status == ChatTurn.Status.RUNNING else None
        self.seen_version = object()
        self.read_at = float("-inf")
        self.sent_at = time.monotonic()
        self.done = False
        self._thread_wake = None
        self._async_wake = None
        self._stops = []

    def needs_read(self):
        """Whether new rows may be there (no database access)."""
        current = events.version(self.turn_pk)
        if current is not None:
            return (
                current != self.seen_version
                or time.monotonic() - self.read_at >= LOCAL_READ_SECONDS
            )
        return self.seen_version is not None or time.monotonic() - self.read_at >= POLL_SECONDS

    def idle_seconds(self):
        """How long nothing can be due: no read (but a wake-up) and no keep-alive."""
        now = time.monotonic()
        period = LOCAL_READ_SECONDS if events.version(self.turn_pk) is not None else POLL_SECONDS
        return max(0.0, min(self.read_at + period, self.sent_at + KEEPALIVE_SECONDS) - now)

    def read(self):
        """The SSE frames of the rows written since the last read (database access)."""
        return [frame(*row) for row in self.read_rows()]

    def read_rows(self):
        """The `(seq, name, data as JSON text)` rows written since the last read, up to
        the turn's last event (database access)."""
        self.seen_version = events.version(self.turn_pk)
        self.read_at = time.monotonic()
        rows = (
            TurnEvent.objects.filter(turn_id=self.turn_pk, seq__gt=self.after)
            .order_by("seq")
            .annotate(data_json=Cast("data", TextField()))
            .values_list("seq", "name", "data_json")
        )
        out = []
        for row in rows:
            out.append(row)
            self.after = row[0]
            if row[1] in TERMINAL_EVENTS:
                self.done = True
                break
        if not out and not self.done:
            self._check_lease()
        if out:
            self.sent_at = time.monotonic()
        return out

    def _check_lease(self):
        """End the stream of a turn that no try holds any more (finished or dead)."""
        if self.lease is not None and self.lease > timezone.now():
            return
        turn = ChatTurn.objects.filter(pk=self.turn_pk).values("status", "lease_expires_at")
        turn = turn.first()
        if (
            turn is None
            or turn["status"] != ChatTurn.Status.RUNNING
            or turn["lease_expires_at"] is None
            or turn["lease_expires_at"] <= timezone.now()
        ):
            if turn is not None and turn["status"] != ChatTurn.Status.RUNNING and self.lease:
                # Finished since the last read: read its last events once more.
                self.lease = None
                return
            self.done = True
        else:
            self.lease = turn["lease_expires_at"]

    def keepalive(self):
        if time.monotonic() - self.sent_at >= KEEPALIVE_SECONDS:
            self.sent_at = time.monotonic()
            return KEEPALIVE
        return None

    def wait(self):
        """Sleep until a read or a keep-alive may be due, or this process's run of the
        turn writes (blocks the thread)."""
        if self._thread_wake is None:
            self._thread_wake = threading.Event()
            self._stops.append(events.listen(self.turn_pk, self._thread_wake.set))
        self._thread_wake.wait(self.idle_seconds())
        self._thread_wake.clear()  # `needs_read` compares versions: no write is missed

    async def wait_async(self):
        """`wait` for an event loop: holds no thread while it waits."""
        if self._async_wake is None:
            loop, self._async_wake = asyncio.get_running_loop(), asyncio.Event()
            wake = self._async_wake.set
            self._stops.append(events.listen(self.turn_pk, lambda: loop.call_soon_threadsafe(wake)))
        try:
            await asyncio.wait_for(self._async_wake.wait(), self.idle_seconds())
        except TimeoutError:
            pass
        self._async_wake.clear()

    def close(self):
        """Stop being woken by the turn's writes."""
        while self._stops:
            self._stops.pop()()

    def __iter__(self):
        try:
            while not self.done:
                if self.needs_read():
                    yield from self.read()
                    continue
                beat = self.keepalive()
                if beat:
                    yield beat
                self.wait()
        finally:
            self.close()

    async def __aiter__(self):
        read = sync_to_async(self.read, thread_sensitive=False)
        try:
            while not self.done:
                if self.needs_read():
                    for part in await read():
                        yield part
                    continue
                beat = self.keepalive()
                if beat:
                    yield beat
                await self.wait_async()
        finally:
            self.close()


def event_stream(request, turn, after=0):
    """The `text/event-stream` answer of `turn`'s events after `after`."""
    follower = Follower(turn, after)
    is_asgi = isinstance(getattr(request, "_request", request), ASGIRequest)
    response = StreamingHttpResponse(
        follower.__aiter__() if is_asgi else iter(follower),
        content_type="text/event-stream",
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # proxies (nginx) pass each event on at once
    return response
