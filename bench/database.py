"""The benchmark's PostgreSQL and its data.

A throwaway PostgreSQL 15 (`testing.pgserver.TempPostgres`) configured as
production runs it, one database per dataset size, each filled by bench/load.py in
processes of its own; pg_stat_statements counts what each request sends. Nothing
here touches a database that the benchmark did not create.
"""

import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

import psycopg

from testing.pgserver import TempPostgres, free_port

from . import ROOT

# PostgreSQL as production runs it: durable commits (TempPostgres turns them off
# for the tests), shared buffers that hold the hot indexes, no checkpoint during
# the run, and pg_stat_statements to count what each request sends.
PG_CONF = """
fsync = on
synchronous_commit = on
full_page_writes = on
shared_buffers = 1GB
max_wal_size = 8GB
checkpoint_timeout = 30min
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track_utility = on
"""


def start_postgres(workdir):
    root = Path(workdir) / "pg"
    root.mkdir()
    os.chmod(root, 0o755)
    server = TempPostgres(root, free_port())
    server.init()
    with open(server.data / "postgresql.conf", "a") as conf:
        conf.write(PG_CONF)
    server.start()
    server.create_database()
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    return server


def second_database(url, name):
    """CREATE DATABASE `name` on the server of `url`; returns its URL."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urllib.parse.urlsplit(url)
    other = urllib.parse.urlunsplit(parts._replace(path="/" + name))
    with psycopg.connect(other, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    return other


def statements_reset(url):
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")


# How pg_stat_statements lists the foreign-key checks PostgreSQL runs inside an
# INSERT or UPDATE: work of that statement, not statements a request sent.
FOREIGN_KEY_CHECK = "SELECT 1 FROM ONLY %FOR KEY SHARE OF x"


def statement_counts(url):
    """(statements the server sent, foreign-key checks run inside them) in this
    database since the reset, this query excluded."""
    with psycopg.connect(url, autocommit=True) as conn:
        sent, checks = conn.execute(
            "SELECT COALESCE(SUM(calls) FILTER (WHERE query NOT LIKE %s), 0),"
            " COALESCE(SUM(calls) FILTER (WHERE query LIKE %s), 0) FROM pg_stat_statements"
            " WHERE query NOT ILIKE '%%pg_stat_statements%%'"
            " AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (FOREIGN_KEY_CHECK, FOREIGN_KEY_CHECK),
        ).fetchone()
    return int(sent), int(checks)


def statements_count(url):
    """Statements the server sent in this database since the reset."""
    return statement_counts(url)[0]


def table_rows(url):
    with psycopg.connect(url, autocommit=True) as conn:
        return sum(
            conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("auth_user", "tasks_task", "chat_conversation", "chat_message")
        )


def run_loader(env, users, jobs):
    subprocess.run(
        [sys.executable, "-m", "bench.load", "--users", str(users), "--jobs", str(jobs)],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=sys.stderr,
    )


def connect_like_django(url):
    """A connection that binds and converts as Django's backend does (client-side
    binding, UTC): what the SQL floor and EXPLAIN replay the captured SQL on."""
    return psycopg.connect(
        url, autocommit=True, cursor_factory=psycopg.ClientCursor, options="-c TimeZone=UTC"
    )
