"""Django's PostgreSQL backend, without two costs it adds to every request.

Selected by settings (ENGINE "chatproject.postgresql") for every PostgreSQL URL;
measured in bench/README.md.

- **Health check without a round trip.** With CONN_HEALTH_CHECKS, Django sends
  `SELECT 1` before the first query of every request that reuses a connection: one
  more statement and round trip per request. Here an idle connection is usable
  unless psycopg knows it closed or broke, or its socket has something to read. A
  server that stops or restarts (fast, immediate, or crashed) sends its notice or
  closes the socket, which shows there without asking it; only then is `SELECT 1`
  sent, to tell a dead connection from a harmless notice. A silent network
  partition, which `SELECT 1` would have waited out too, is bounded by the
  connect timeout and answered 503 (core.errors).
- **Timestamps loaded in C.** Django registers a Python loader for timestamptz
  that relabels each value with the connection's time zone (some microseconds
  each, a hundred per page of messages). For UTC, psycopg's own C loader already
  returns values in `datetime.timezone.utc`; it is used, through a thin wrapper
  that has the `timezone` attribute Django looks for.
"""

import datetime
import functools
import select

import psycopg
from django.conf import settings
from django.db.backends.postgresql import base
from django.db.backends.postgresql.psycopg_any import get_adapters_template
from psycopg import adapt
from psycopg.pq import Format


class UtcTimestamptzLoader(adapt.Loader):
    """psycopg's (C) timestamptz loader, values in `datetime.timezone.utc`."""

    timezone = datetime.UTC

    def __init__(self, oid, context=None):
        super().__init__(oid, context)
        self._load = psycopg.adapters.get_loader(oid, Format.TEXT)(oid, context).load

    def load(self, data):
        value = self._load(data)
        # UTC whenever the session's TimeZone is UTC, which Django sets.
        return value if value.tzinfo is datetime.UTC else value.astimezone(datetime.UTC)


@functools.cache
def utc_adapters():
    adapters = adapt.AdaptersMap(get_adapters_template(True, datetime.UTC))
    adapters.register_loader("timestamptz", UtcTimestamptzLoader)
    return adapters


def has_unread_input(fileno):
    poller = select.poll()
    poller.register(fileno, select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self):
        params = super().get_connection_params()
        if settings.USE_TZ and self.timezone is datetime.UTC:
            params["context"] = utc_adapters()
        return params

    def is_usable(self):
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        if not has_unread_input(connection.fileno()):
            return True
        return super().is_usable()
