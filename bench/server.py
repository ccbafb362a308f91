"""One gunicorn per dataset, as production starts it, and the CPU time it spends.

`Target` is one dataset's database, server and scenarios; `cpu_seconds()` reads
the CPU time of the server's processes and of PostgreSQL's from /proc, which other
load on the shared machine hardly moves.
"""

import os
import time
from pathlib import Path

from testing.servers import GunicornServer

# The server runs with the production settings; these only lift the limits that a
# load test is meant to pass (one user sends thousands of requests a second) and
# keep the access token alive for the whole run. A per-second window keeps the
# per-user throttle's history about as short as production's 2000/minute would.
BENCH_ENV = {
    "THROTTLE_RATE_USER": "100000/s",
    "THROTTLE_RATE_AUTH": "100000/s",
    "JWT_ACCESS_MINUTES": "240",
    "GUNICORN_LOG_LEVEL": "warning",
}

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Connections that reach every gunicorn worker thread (8 workers x 4 threads at most).
WARM_CONNECTIONS = 32


class Target:
    """One dataset: its database, its server and the scenarios against them."""

    def __init__(self, label, url, env, users, postgres):
        self.label = label
        self.url = url
        self.env = env
        self.users = users
        self.postgres = postgres
        self.server = None
        self.reads = {}
        self.writes = {}
        self.info = {}
        self.captured = {}
        self.missing = {}

    @property
    def port(self):
        return self.server.port

    @property
    def read_names(self):
        return list(self.reads)

    def start(self, workdir):
        self.server = GunicornServer(
            self.env, log_path=Path(workdir) / f"gunicorn-{self.label}.log"
        )
        self.server.start()

    def stop(self):
        if self.server is not None:
            self.server.stop()

    def cpu_seconds(self):
        """CPU time so far of this server's gunicorn processes and of PostgreSQL's."""
        postmaster = int((self.postgres.data / "postmaster.pid").read_text().split()[0])
        app = db = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                pid = int(stat.parent.name)
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, ValueError, IndexError):
                continue  # the process has gone
            ticks = int(fields[11]) + int(fields[12])  # utime, stime
            if fields[3] == str(self.server.process.pid):  # gunicorn's session
                app += ticks
            elif pid == postmaster or fields[1] == str(postmaster):
                db += ticks
        return app / CLOCK_TICKS, db / CLOCK_TICKS


def wait_idle(target, timeout=60):
    """Until the server has finished the requests wrk left in flight when it stopped
    (a token request costs a third of a second of CPU): they would bill the next run."""
    deadline = time.monotonic() + timeout
    before = target.cpu_seconds()[0]
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = target.cpu_seconds()[0]
        if now - before < 0.02:
            return
        before = now


def server_description(overrides):
    env = {**os.environ, **overrides}
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = env.get("WEB_CONCURRENCY") or f"{min(2 * cpus, 8)} (default)"
    threads = env.get("GUNICORN_THREADS") or "4 (default)"
    text = f"gunicorn.conf.py: workers {workers}, threads {threads}"
    return text + (f"; overrides {overrides}" if overrides else "")
