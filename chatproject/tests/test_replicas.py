"""Read replicas with read-your-writes, against a real hot standby (chatproject/replicas.py).

The suite's PostgreSQL gets a streaming standby (`pg_basebackup -R`), and gunicorn
from the Procfile is started with DATABASE_REPLICA_URLS pointing at it. With the
standby's replay paused, a user who writes reads their write at once, while another
user's reads come from the standby: a row put on the primary behind the API's back
is missing from what they see. With the standby stopped, reads go on with no error.
"""

import time
import uuid

import httpx
import psycopg
import pytest

from testing.pgserver import TempPostgres, database_url, scratch_database
from testing.servers import GunicornServer, collectstatic, production_env, run_release

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

PASSWORD = "correct-horse-battery-staple"


def wal_position(url, function):
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(f"SELECT {function}() - '0/0'::pg_lsn").fetchone()[0]


def wait_for_replay(primary_url, standby_url, timeout=20):
    target = wal_position(primary_url, "pg_current_wal_insert_lsn")
    deadline = time.monotonic() + timeout
    while wal_position(standby_url, "pg_last_wal_replay_lsn") < target:
        assert time.monotonic() < deadline, "the standby did not catch up"
        time.sleep(0.05)


def sign_up(base_url):
    username = f"u{uuid.uuid4().hex[:10]}"
    with httpx.Client(base_url=base_url, timeout=30) as client:
        assert (
            client.post(
                "/api/v1/auth/register/", json={"username": username, "password": PASSWORD}
            ).status_code
            == 201
        )
        tokens = client.post(
            "/api/v1/auth/token/", json={"username": username, "password": PASSWORD}
        ).json()
    return httpx.Client(
        base_url=base_url, timeout=30, headers={"Authorization": f"Bearer {tokens['access']}"}
    )


def titles(client):
    answer = client.get("/api/v1/tasks/?page_size=100")
    assert answer.status_code == 200, answer.text
    return {task["title"] for task in answer.json()["results"]}


@pytest.fixture(scope="module", params=["direct", "through_pgbouncer"])
def site(request):
    """gunicorn on a scratch database of the suite's primary (directly, or through the
    suite's transaction-mode PgBouncer), reading from a standby."""
    primary = TempPostgres.from_env()
    collectstatic()
    with scratch_database(primary.url, prefix="replica") as direct_url:
        name = direct_url.rsplit("/", 1)[1]
        with TempPostgres.standby_of(primary) as standby:
            replica_url = database_url(standby.url, name)
            web_url = direct_url
            if request.param == "through_pgbouncer":
                web_url = database_url(primary.bouncer_url, name)
            env = production_env(
                web_url,
                DATABASE_REPLICA_URLS=replica_url,
                REPLICA_RETRY_SECONDS=1,
                DIRECT_DATABASE_URL=direct_url,
                DISABLE_SERVER_SIDE_CURSORS=1,
            )
            run_release(env)
            with GunicornServer(env) as server:
                server.primary_url, server.replica_url, server.standby = (
                    direct_url,
                    replica_url,
                    standby,
                )
                yield server


def test_writer_reads_own_write_while_others_read_the_paused_replica(site):
    writer, reader = sign_up(site.url), sign_up(site.url)
    assert reader.post("/api/v1/tasks/", json={"title": "replicated"}).status_code == 201
    reader_id = reader.get("/api/v1/auth/me/").json()["id"]
    wait_for_replay(site.primary_url, site.replica_url)

    with psycopg.connect(site.replica_url, autocommit=True) as standby:
        standby.execute("SELECT pg_wal_replay_pause()")
        try:
            # Behind the API's back: no write mark, so only the primary has it.
            with psycopg.connect(site.primary_url, autocommit=True) as primary:
                primary.execute(
                    "INSERT INTO tasks_task (owner_id, title, description, completed,"
                    " created_at, updated_at, priority, tags) VALUES (%s, 'primary only',"
                    " '', false, now(), now(), 'normal', '[]')",
                    [reader_id],
                )
            for attempt in range(5):
                title = f"mine {attempt}"
                assert writer.post("/api/v1/tasks/", json={"title": title}).status_code == 201
                assert title in titles(writer)  # at once, whatever process answers
            assert titles(reader) == {"replicated"}  # the paused standby answered
        finally:
            standby.execute("SELECT pg_wal_replay_resume()")


def test_a_stopped_replica_is_skipped_with_no_error(site):
    reader = sign_up(site.url)
    assert reader.post("/api/v1/tasks/", json={"title": "kept"}).status_code == 201
    site.standby.stop("immediate")
    try:
        for _ in range(6):
            assert titles(reader) == {"kept"}
    finally:
        site.standby.start()
