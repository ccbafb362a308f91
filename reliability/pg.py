"""A PostgreSQL server of the run's own, which the faults may stop and start.

Never the suite's server (DATABASE_URL): stopping that one would fail every other
test running against it. Built from `testing.pgserver.TempPostgres`, with
production's durability settings.
"""

import contextlib
import os
import shutil
import tempfile
import time

import psycopg

from testing.pgserver import TempPostgres, free_port


@contextlib.contextmanager
def own_postgres():
    """A fresh PostgreSQL 15 (initdb, start, create the database), removed afterwards."""
    root = tempfile.mkdtemp(prefix="reliability-pg-")
    os.chmod(root, 0o755)
    server = TempPostgres(root, free_port())
    try:
        server.init()
        # testing.pgserver trades durability for speed (fsync, synchronous_commit and
        # full_page_writes off): an immediate shutdown then loses commits the server
        # had already acknowledged. A fault run needs production's durability, so
        # these lines, appended last, win.
        with open(server.data / "postgresql.conf", "a") as conf:
            conf.write("\nfsync = on\nsynchronous_commit = on\nfull_page_writes = on\n")
        server.start()
        server.create_database()
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


def restart(server, mode, down_seconds=0.5):
    """Stop the server with pg_ctl's `mode` ("fast" or "immediate"), wait, start it.

    Returns (stopped_at, started_at) as monotonic times.
    """
    server.stop(mode)
    stopped_at = time.monotonic()
    time.sleep(down_seconds)
    server.start()
    return stopped_at, time.monotonic()


def connect(server):
    return psycopg.connect(server.url, connect_timeout=10, autocommit=True)
