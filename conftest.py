"""Fixtures shared by every app's tests: users, authenticated API clients."""

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from testing.factories import UserFactory


def pytest_collection_modifyitems(config, items):
    """Tests marked `postgres` or `e2e` need PostgreSQL: skipped in the SQLite pass.

    In the PostgreSQL pass they run, and fail (never skip) if what they need is missing.
    """
    from django.db import connection

    if connection.vendor == "postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: runs in bin/test's PostgreSQL pass")
    for item in items:
        if item.get_closest_marker("postgres") or item.get_closest_marker("e2e"):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _static_files_without_manifest(settings):
    """In-process tests render admin pages without a collectstatic run first.

    Production's manifest storage needs `collectstatic`; the end-to-end tests run
    that against the real gunicorn.
    """
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _throttle_clock_inside_one_window(monkeypatch):
    """In-process tests count their requests in one fixed throttle window (a test that
    straddled the end of a minute would otherwise see its count start again), with
    none of another test's leases."""
    from core.throttling import LEASES, SharedRateThrottle

    monkeypatch.setattr(SharedRateThrottle, "timer", staticmethod(lambda: 1_800_000_030.0))
    LEASES.clear()


@pytest.fixture(autouse=True)
def _clear_throttle_caches():
    from django.core.cache import caches

    caches["default"].clear()


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def other_user(db):
    return UserFactory()


def client_for(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(user)}")
    return client


@pytest.fixture
def api_client(user):
    return client_for(user)


@pytest.fixture
def other_client(other_user):
    return client_for(other_user)


@pytest.fixture
def anon_client():
    return APIClient()


@pytest.fixture
def assert_max_queries():
    """Like django_assert_max_num_queries, but SAVEPOINT statements do not count.

    Each test runs inside a transaction, so a service's `transaction.atomic()`
    becomes a savepoint here, while in production it is the outermost transaction
    and sends no SAVEPOINT statement at all.
    """
    from contextlib import contextmanager

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    @contextmanager
    def check(limit):
        with CaptureQueriesContext(connection) as context:
            yield context
        queries = [
            q["sql"]
            for q in context.captured_queries
            if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT"))
        ]
        assert len(queries) <= limit, f"{len(queries)} queries > {limit}:\n" + "\n".join(queries)

    return check


@pytest.fixture
def populated(user):
    """`user` with 101 tasks and 101 conversations, the first with 120 messages: enough
    that a query per row or per page would show in a query count."""
    from testing.factories import ConversationFactory, TaskFactory, add_messages

    tasks = [TaskFactory(owner=user) for _ in range(101)]
    conversations = [ConversationFactory(owner=user) for _ in range(101)]
    add_messages(conversations[0], 120)
    return tasks, conversations
