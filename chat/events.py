"""A chat turn's events: written by the process that runs the turn, read by any.

The events of a turn are rows of `TurnEvent`, numbered 1, 2, 3, ... in the order
the turn wrote them; the database is the only channel between the process that
runs a turn and the processes that stream it. `EventLog` is the writer a turn's
run holds (its lease makes it the only one). It coalesces the model's text: one
`message.delta` row per `FLUSH_SECONDS` or `FLUSH_CHARS` characters, whichever
comes first, instead of one per token.

`ReplyText` decides what text may be sent while the model still speaks: the
stored reply is the model's text stripped (and cut at the content limit), so
leading and trailing blanks are held back until more text shows they are inside
the reply. Whatever is sent is a prefix of the reply, and `ReplyText.rest`
gives the remainder once the reply is known: the deltas concatenate to exactly
the stored reply.

In-process followers do not poll the database while nothing changes: a turn run
in this process bumps `version(turn_pk)` after each committed write, and wakes
the followers that `listen` to it.
"""

import threading
import time

import orjson
from django.db import transaction

from core.renderers import FastJSONRenderer

from .models import CONTENT_MAX_LENGTH, TurnEvent

FLUSH_SECONDS = 0.25
FLUSH_CHARS = 200

_versions = {}
_listeners = {}
_versions_lock = threading.Lock()


def version(turn_pk):
    """This process's write counter of a turn it runs, or None if it runs elsewhere."""
    return _versions.get(turn_pk)


def listen(turn_pk, wake):
    """Call `wake()` (from the writer's thread) after each committed write of a turn
    this process runs; returns the function that stops it."""
    with _versions_lock:
        _listeners.setdefault(turn_pk, set()).add(wake)

    def stop():
        with _versions_lock:
            wakes = _listeners.get(turn_pk)
            if wakes is not None:
                wakes.discard(wake)
                if not wakes:
                    del _listeners[turn_pk]

    return stop


def _bump(turn_pk):
    with _versions_lock:
        if turn_pk in _versions:
            _versions[turn_pk] += 1
        wakes = list(_listeners.get(turn_pk, ()))
    for wake in wakes:
        wake()


def as_json(value):
    """`value` as the API renders it (timestamps with `Z`, UUIDs as text), parsed back."""
    return orjson.loads(FastJSONRenderer().render(value))


def fit(text):
    """The stored form of a reply: its text, cut to the content limit."""
    return text if len(text) <= CONTENT_MAX_LENGTH else text[: CONTENT_MAX_LENGTH - 1] + "…"


class ReplyText:
    """The model's text of one step, and how much of it is safe to send."""

    def __init__(self):
        self.raw = ""
        self.sent = 0

    def add(self, piece):
        """Take a piece of the model's text; returns the part that may be sent now."""
        self.raw += piece
        safe = self.raw.strip()[: CONTENT_MAX_LENGTH - 1]
        out, self.sent = safe[self.sent :], max(self.sent, len(safe))
        return out

    def final(self):
        """The reply as it is stored, from the text received so far."""
        return fit(self.raw.strip())

    def rest(self, reply):
        """What is left to send of `reply` (the stored reply) after what was sent."""
        return reply[self.sent :]


class EventLog:
    """Writes the events of one try of a turn; see the module docstring.

    Call `add` inside the transaction that stores what the event describes, so an
    event is visible exactly when its effect is. `delta` writes outside any.
    """

    def __init__(self, turn, *, next_seq):
        self.turn = turn
        self.seq = next_seq - 1
        self.pending = []
        self.pending_chars = 0
        self.flushed_at = time.monotonic()

    def start(self):
        """Register the turn as run by this process (see `version`)."""
        with _versions_lock:
            _versions.setdefault(self.turn.pk, 0)

    def stop(self):
        with _versions_lock:
            _versions.pop(self.turn.pk, None)

    def add(self, name, data, *more):
        """Write the pending text (if any) and this event (and the `(name, data)`
        pairs of `more` after it), in one statement."""
        rows = [*self._pending_rows(), self._row(name, data)]
        rows += [self._row(*event) for event in more]
        TurnEvent.objects.bulk_create(rows)
        transaction.on_commit(lambda: _bump(self.turn.pk))

    def delta(self, text):
        if not text:
            return
        self.pending.append(text)
        self.pending_chars += len(text)
        if self.pending_chars >= FLUSH_CHARS or time.monotonic() - self.flushed_at >= FLUSH_SECONDS:
            self.flush()

    def flush(self):
        """Write the pending text as one `message.delta` row: one INSERT, which
        outside a transaction is its own (bulk_create would add BEGIN and COMMIT)."""
        for row in self._pending_rows():
            row.save(force_insert=True)
            transaction.on_commit(lambda: _bump(self.turn.pk))

    def discard(self):
        self.pending, self.pending_chars = [], 0

    def _pending_rows(self):
        if not self.pending:
            return []
        text = "".join(self.pending)
        self.discard()
        self.flushed_at = time.monotonic()
        return [self._row(TurnEvent.Name.DELTA, {"delta": text})]

    def _row(self, name, data):
        self.seq += 1
        return TurnEvent(
            owner_id=self.turn.owner_id, turn_id=self.turn.pk, seq=self.seq, name=name, data=data
        )
