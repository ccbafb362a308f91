"""The PostgreSQL backend (chatproject.postgresql): no SELECT 1 per request, C timestamps.

A healthy reused connection passes its health check without a statement (observed
from the server, in pg_stat_activity: Django's probe bypasses its own cursor
wrappers, so CaptureQueriesContext would not see it either way); a connection the
server has ended fails it; timestamps come back aware, in `datetime.timezone.utc`.
"""

import contextlib
import datetime
import select

import psycopg
import pytest
from django.conf import settings
from django.db import connection, connections
from django.db.backends.postgresql import base as django_base
from psycopg.adapt import Loader
from psycopg.postgres import types
from psycopg.pq import Format

from chat.models import Conversation
from chatproject.postgresql import base
from chatproject.postgresql.base import UtcTimestamptzLoader
from testing.factories import ConversationFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

UTC = datetime.UTC  # is datetime.timezone.utc
MINUS_0700 = datetime.timezone(datetime.timedelta(hours=-7))
PLUS_0530 = datetime.timezone(datetime.timedelta(hours=5, minutes=30))
TIMESTAMPTZ_OID = types.get("timestamptz").oid


@contextlib.contextmanager
def observer():
    """A separate autocommit session on the test database."""
    params = connection.settings_dict
    with psycopg.connect(
        dbname=params["NAME"],
        user=params["USER"],
        password=params["PASSWORD"],
        host=params["HOST"],
        port=params["PORT"],
        autocommit=True,
        connect_timeout=10,
    ) as conn:
        yield conn


def last_statement(conn, pid):
    """What the server last ran for the backend `pid`, as pg_stat_activity shows it."""
    return conn.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()[0]


@pytest.fixture
def own_connection():
    """A second connection of this backend, which a test may let the server end."""
    wrapper = connection.copy()
    wrapper.ensure_connection()
    yield wrapper
    wrapper.close()


def test_the_engine_in_use_is_the_projects_backend():
    assert settings.DATABASES["default"]["ENGINE"] == "chatproject.postgresql"
    assert type(connections["default"]) is base.DatabaseWrapper
    assert connection.health_check_enabled


def test_health_check_of_a_healthy_connection_sends_no_statement():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'before the health check'")
        pid = connection.connection.info.backend_pid
    connection.health_check_done = False  # as at the start of the next request

    with observer() as server:
        connection.close_if_health_check_failed()
        after_check = last_statement(server, pid)
        # Django's own check, for contrast: the probe does see a SELECT 1 when one is sent.
        assert django_base.DatabaseWrapper.is_usable(connection)
        after_stock_check = last_statement(server, pid)

    assert connection.health_check_done
    assert connection.connection is not None and not connection.connection.closed
    assert after_check == "SELECT 'before the health check'"
    assert after_stock_check == "SELECT 1"


def test_health_check_of_an_idle_autocommit_connection_sends_no_statement(own_connection):
    with own_connection.cursor() as cursor:
        cursor.execute("SELECT 'idle now'")
    pid = own_connection.connection.info.backend_pid
    own_connection.health_check_done = False

    with observer() as server:
        own_connection.close_if_health_check_failed()
        statement = last_statement(server, pid)

    assert statement == "SELECT 'idle now'"
    assert own_connection.connection is not None
    assert own_connection.connection.info.backend_pid == pid  # the same session, kept


def test_connection_ended_by_the_server_is_not_usable(own_connection):
    pid = own_connection.connection.info.backend_pid
    with observer() as server:
        ended = server.execute("SELECT pg_terminate_backend(%s, 5000)", [pid]).fetchone()[0]
    assert ended
    select.select([own_connection.connection.fileno()], [], [], 5)

    assert own_connection.is_usable() is False


def test_health_check_replaces_a_connection_the_server_ended(own_connection):
    pid = own_connection.connection.info.backend_pid
    with observer() as server:
        server.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])
    select.select([own_connection.connection.fileno()], [], [], 5)
    own_connection.health_check_done = False

    own_connection.close_if_health_check_failed()
    assert own_connection.connection is None
    with own_connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        new_pid = cursor.fetchone()[0]

    assert new_pid != pid


def test_unread_notice_on_a_live_connection_is_checked_and_found_usable(own_connection):
    """Input waiting on the socket is not a verdict: SELECT 1 tells a notice from a close."""
    with own_connection.cursor() as cursor:
        cursor.execute("LISTEN chatproject_backend_test")
    pid = own_connection.connection.info.backend_pid
    with observer() as server:
        server.execute("NOTIFY chatproject_backend_test")
        readable, _, _ = select.select([own_connection.connection.fileno()], [], [], 5)
        assert readable, "the notification never arrived"

        usable = own_connection.is_usable()
        statement = last_statement(server, pid)

    assert usable is True
    assert statement == "SELECT 1"


def test_timestamptz_is_loaded_by_the_utc_loader():
    with connection.cursor() as cursor:
        loader = cursor.cursor.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT)

    assert loader is UtcTimestamptzLoader
    assert issubclass(loader, Loader)
    assert loader.timezone is UTC


@pytest.mark.parametrize(
    "written",
    [
        datetime.datetime(2024, 6, 1, 12, 0, 0, 250000, tzinfo=UTC),
        datetime.datetime(2024, 6, 1, 12, 0, 0, 250000, tzinfo=MINUS_0700),
        datetime.datetime(2024, 12, 31, 23, 59, 59, 999999, tzinfo=PLUS_0530),
    ],
    ids=["utc", "minus_0700", "plus_0530"],
)
def test_timestamps_read_back_aware_in_utc(user, written):
    conversation = ConversationFactory(owner=user, created_at=written, updated_at=written)

    read = Conversation.objects.get(pk=conversation.pk)
    row = Conversation.objects.values_list("created_at", flat=True).get(pk=conversation.pk)

    for value in (read.created_at, read.updated_at, row):
        assert value == written
        assert value.tzinfo is UTC


def test_timestamp_written_in_sql_with_an_offset_reads_back_in_utc(user):
    conversation = ConversationFactory(owner=user)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE chat_conversation SET created_at = '2024-06-01 12:00:00.5-07:00' WHERE id = %s",
            [conversation.pk],
        )
        cursor.execute(
            "SELECT created_at, now() FROM chat_conversation WHERE id = %s", [conversation.pk]
        )
        raw, now = cursor.fetchone()

    read = Conversation.objects.get(pk=conversation.pk).created_at

    assert read == raw == datetime.datetime(2024, 6, 1, 19, 0, 0, 500000, tzinfo=UTC)
    assert read.tzinfo is UTC and raw.tzinfo is UTC and now.tzinfo is UTC


def test_timestamps_stay_utc_when_the_session_time_zone_is_not(user):
    written = datetime.datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
    conversation = ConversationFactory(owner=user, created_at=written)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL TIME ZONE 'Asia/Kolkata'")  # undone with the test's rollback
        cursor.execute("SHOW TIME ZONE")
        assert cursor.fetchone()[0] == "Asia/Kolkata"
        cursor.execute("SELECT created_at FROM chat_conversation WHERE id = %s", [conversation.pk])
        raw = cursor.fetchone()[0]

    read = Conversation.objects.get(pk=conversation.pk).created_at

    assert raw == read == written
    assert raw.tzinfo is UTC and read.tzinfo is UTC
