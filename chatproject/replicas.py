"""Reads from PostgreSQL read replicas, with read-your-writes for every client.

`DATABASE_REPLICA_URLS` (comma-separated) adds the aliases `replica_0`, `replica_1`,
... Every write, every migration and every read of a request that writes (POST,
PUT, PATCH, DELETE) uses the primary (`default`). A read-only request (GET, HEAD)
of a user reads from a replica only if that replica has replayed the user's last
write:

- After a request of an authenticated user that may have written (an unsafe method
  answered below 400), `ReplicaMiddleware` records the primary's WAL position,
  `pg_current_wal_insert_lsn()`, as that user's *write mark* in the `shared` cache (the
  database by default, Redis with REDIS_URL), which every process and host reads.
  The position is taken after the request's transaction committed, so it is at or
  past the user's last commit record (the insert position, not the written one: with
  `synchronous_commit = off` a commit may still sit in the WAL buffers).
- A read-only request looks up its user's mark (the user id claimed by the bearer
  token; the token itself is verified later, as always: routing grants nothing) and
  takes the first replica whose `pg_last_wal_replay_lsn()` is at or past it. A
  replica's replayed position only grows, so the last one seen is kept per process
  and asked again only when it is not enough. A user with no mark (who never wrote,
  or whose mark expired after `REPLICA_MARK_SECONDS`, far longer than any sane lag)
  reads from any replica.
- A replica that cannot be reached, or errs, is left alone for
  `REPLICA_RETRY_SECONDS`; a replica that lags behind a user's mark serves other
  users. Either way the request reads from the primary, with no error.

Why this scheme: API clients send no cookies, and one client may be served by
several hosts, so "recently wrote" must live where every process sees it; a WAL
position, unlike a time window, is exact: it never sends a user to a replica that
lacks their write, and sends them back as soon as it has it.

The user's own row (authentication), the chat turn's endpoints (a live turn is
followed across processes) and the shared cache's table always use the primary.
"""

import contextvars
import logging
import threading
import time

import jwt
from django.conf import settings
from django.core.cache import caches
from django.db import DatabaseError, connections

from core.authentication import claimed_user_id as user_id_claim

logger = logging.getLogger("chatproject.replicas")

# The alias a read of this request goes to; "default" unless the middleware chose one.
read_alias = contextvars.ContextVar("read_alias", default="default")

PRIMARY_ONLY_PATHS = ("/api/v1/chat/", "/admin/")
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def replica_aliases():
    return [alias for alias in settings.DATABASES if alias.startswith("replica_")]


class ReplicaRouter:
    """Reads go where `ReplicaMiddleware` decided for this request; all else to the primary."""

    def db_for_read(self, model, **hints):
        if model._meta.app_label == "django_cache" or model._meta.label == settings.AUTH_USER_MODEL:
            return "default"
        return read_alias.get()

    def db_for_write(self, model, **hints):
        return "default"

    def allow_relation(self, obj1, obj2, **hints):
        return True  # every alias holds the same data

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == "default"


class ReplayPositions:
    """What each replica has replayed, as last seen by this process, and which are down."""

    def __init__(self):
        self._lock = threading.Lock()
        self._replayed = {}
        self._down_until = {}

    def serving(self, alias, mark):
        """True if `alias` is up and has replayed up to WAL position `mark` (an int)."""
        if time.monotonic() < self._down_until.get(alias, 0):
            return False
        try:
            # Free on a live connection; a server that went away was found out by the
            # health check at the request's start, so this reconnects, or fails fast.
            connections[alias].ensure_connection()
        except DatabaseError as exc:
            logger.warning("replica %s skipped: %s", alias, exc)
            self.mark_down(alias)
            return False
        if self._replayed.get(alias, -1) >= mark:
            return True
        position = self._ask(alias)
        return position is not None and position >= mark

    def _ask(self, alias):
        try:
            with connections[alias].cursor() as cursor:
                cursor.execute("SELECT pg_last_wal_replay_lsn() - '0/0'::pg_lsn")
                (position,) = cursor.fetchone()
        except DatabaseError as exc:
            logger.warning("replica %s skipped: %s", alias, exc)
            self.mark_down(alias)
            return None
        position = -1 if position is None else int(position)
        with self._lock:
            self._replayed[alias] = max(self._replayed.get(alias, -1), position)
        return position

    def mark_down(self, alias):
        with self._lock:
            self._down_until[alias] = time.monotonic() + settings.REPLICA_RETRY_SECONDS
        try:
            connections[alias].close()
        except DatabaseError:
            pass

    def forget(self):
        with self._lock:
            self._replayed.clear()
            self._down_until.clear()


REPLAY_POSITIONS = ReplayPositions()


def mark_key(user_id):
    return f"replica-mark:{user_id}"


def record_write(user_id):
    """Remember the primary's current WAL position as `user_id`'s write mark."""
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn")
        (position,) = cursor.fetchone()
    caches["shared"].set(mark_key(user_id), int(position), settings.REPLICA_MARK_SECONDS)


def claimed_user_id(request):
    """The user id a bearer token claims, unverified: it only picks a database, and
    the token is verified as always when the view authenticates the request."""
    scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme != "Bearer":
        return None
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    return user_id_claim(claims) if isinstance(claims, dict) else None


def choose_read_alias(request):
    if request.method in UNSAFE_METHODS or request.path.startswith(PRIMARY_ONLY_PATHS):
        return "default"
    user_id = claimed_user_id(request)
    mark = caches["shared"].get(mark_key(user_id), 0) if user_id is not None else 0
    for alias in replica_aliases():
        if REPLAY_POSITIONS.serving(alias, mark):
            return alias
    return "default"


class ReplicaMiddleware:
    """Chooses the database of a request's reads and records a user's writes.

    Installed only when DATABASE_REPLICA_URLS names replicas.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = read_alias.set(choose_read_alias(request))
        try:
            response = self.get_response(request)
        finally:
            read_alias.reset(token)
        user = getattr(request, "user", None)
        if (
            request.method in UNSAFE_METHODS
            and response.status_code < 400
            and getattr(user, "is_authenticated", False)
        ):
            record_write(user.pk)
        return response
