"""Fixtures for the end-to-end tests (test_e2e_*, test_admin_browser, test_outage).

Session-scoped, so the production site started for one file serves the next. Each
site has a database of its own on the suite's PostgreSQL, migrated by the
Procfile's release command and dropped afterwards; pytest-django's test database
is never shared with a separate gunicorn.
"""

import os

import pytest

from testing.servers import production_site


@pytest.fixture(scope="session")
def e2e_direct_site():
    """gunicorn from the Procfile, talking to PostgreSQL directly."""
    with production_site(os.environ["DATABASE_URL"]) as server:
        yield server


@pytest.fixture(scope="session")
def e2e_pooled_site():
    """gunicorn from the Procfile, talking to PostgreSQL through PgBouncer (transaction
    mode, as Neon's pooled endpoint); the release goes over the direct URL."""
    bouncer = os.environ.get("PGBOUNCER_DATABASE_URL")
    if not bouncer:
        pytest.fail("PGBOUNCER_DATABASE_URL is not set: run under python -m testing.pgserver run")
    with production_site(
        os.environ["DATABASE_URL"], bouncer_url=bouncer, DISABLE_SERVER_SIDE_CURSORS=1
    ) as server:
        yield server
