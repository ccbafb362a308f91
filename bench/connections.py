"""Database connection modes compared under load and through an outage.

    .venv/bin/python -m testing.pgserver run -- \
        .venv/bin/python -m bench.connections compare-connections
    .venv/bin/python -m bench.connections compare-outage

`compare_connections` measures requests per second and latency of each mode
(per-request connections, persistent ones, psycopg's pool), direct and through
PgBouncer, with wrk; `compare_outage` stops PostgreSQL under a running gunicorn and
reports how each reusing mode answers while it is down and once it is back. The
figures and the choice they led to are in docs/deploy.md. Benchmarks, not tests:
nothing here asserts, and the suite never runs them.
"""

import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack

from testing.pgserver import TempPostgres, database_url, scratch_database
from testing.servers import GunicornServer, HttpClient, production_env, run_release

CONNECTION_MODES = {
    "per-request": {"DB_POOL": "0", "CONN_MAX_AGE": "0"},
    "persistent": {"DB_POOL": "0", "CONN_MAX_AGE": "600"},
    "pool": {"DB_POOL": "1"},
}


def compare_connections(seconds=8, connections=16, rounds=3):
    """Requests per second and latency of each connection mode, direct and via PgBouncer.

    Needs `wrk` and the environment of `python -m testing.pgserver run -- ...`.
    Each mode serves GET /api/v1/tasks/ (an authenticated page of 20 tasks) from
    gunicorn with WEB_CONCURRENCY=2 and GUNICORN_THREADS=4; the modes run side by
    side and take turns under load, so a noisy machine disturbs them alike.
    """
    wrk = shutil.which("wrk")
    if not wrk:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    base = os.environ["DATABASE_URL"]
    bouncer = os.environ.get("PGBOUNCER_DATABASE_URL")
    results = {}
    with scratch_database(base, prefix="bench") as direct_url:
        routes = {"direct": direct_url}
        if bouncer:
            routes["pgbouncer"] = database_url(bouncer, direct_url.rsplit("/", 1)[1])
        run_release(production_env(direct_url))
        for route, url in routes.items():
            with ExitStack() as stack:
                targets = {}
                for mode, settings in CONNECTION_MODES.items():
                    env = production_env(
                        url,
                        WEB_CONCURRENCY=2,
                        GUNICORN_THREADS=4,
                        THROTTLE_RATE_USER="100000000/minute",
                        THROTTLE_RATE_AUTH="100000/minute",
                        DISABLE_SERVER_SIDE_CURSORS="1" if route == "pgbouncer" else "0",
                        **settings,
                    )
                    server = stack.enter_context(GunicornServer(env))
                    client = HttpClient(server.url)
                    client.login(f"bench-{route}-{mode}", "bench-password-123")
                    for i in range(20):
                        client.post("/api/v1/tasks/", {"title": f"task {i}"})
                    targets[mode] = (server.url + "/api/v1/tasks/", client.token)
                for round_ in range(rounds + 1):
                    for mode, (target, token) in targets.items():
                        duration = "2s" if round_ == 0 else f"{seconds}s"  # round 0: warm-up
                        out = subprocess.run(
                            [
                                wrk,
                                "-t2",
                                f"-c{connections}",
                                f"-d{duration}",
                                "--latency",
                                "-H",
                                f"Authorization: Bearer {token}",
                                target,
                            ],
                            capture_output=True,
                            text=True,
                            check=True,
                        ).stdout
                        if round_ == 0:
                            continue
                        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
                        p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)
                        p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)
                        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
                        bad = int(bad.group(1)) if bad else 0
                        results.setdefault((route, mode), []).append((rps, p50, p99, bad))
                        print(
                            f"{route:9} {mode:11} {rps:7.0f} req/s  p50 {p50:>8}  "
                            f"p99 {p99:>8}  non-2xx {bad}",
                            flush=True,
                        )
    print("\nmedian of", rounds, "runs:")
    for (route, mode), runs in results.items():
        median = statistics.median(run[0] for run in runs)
        print(f"{route:9} {mode:11} {median:7.0f} req/s")
    return results


def compare_outage(down_seconds=10):
    """How each reusing connection mode lives through a database outage.

    For each mode: gunicorn on a PostgreSQL of its own, which is stopped for
    `down_seconds` and started again; prints the slowest answer while it is down
    (all must be 503) and how long until 8 answers in a row are 200 once it is back.
    """
    for mode in ("persistent", "pool"):
        with TempPostgres.temporary() as postgres:
            env = production_env(
                postgres.url, WEB_CONCURRENCY=2, GUNICORN_THREADS=4, **CONNECTION_MODES[mode]
            )
            run_release(env)
            with GunicornServer(env) as server:
                client = HttpClient(server.url)
                client.login("outage", "Outage-Passw0rd-7741")
                for _ in range(8):
                    client.get("/api/v1/tasks/")
                postgres.stop("fast")
                statuses, slowest = set(), 0.0
                until = time.monotonic() + down_seconds
                while time.monotonic() < until:
                    started = time.monotonic()
                    statuses.add(client.get("/api/v1/tasks/").status)
                    slowest = max(slowest, time.monotonic() - started)
                postgres.start()
                started, streak, failed = time.monotonic(), 0, 0
                while streak < 8 and time.monotonic() - started < 120:
                    ok = client.get("/api/v1/tasks/").status == 200
                    streak, failed = (streak + 1, failed) if ok else (0, failed + 1)
                print(
                    f"{mode:11} down: {sorted(statuses)} slowest {slowest:.2f}s; back: "
                    f"{failed} failed, 8 x 200 after {time.monotonic() - started:.2f}s",
                    flush=True,
                )


if __name__ == "__main__":
    commands = {"compare-connections": compare_connections, "compare-outage": compare_outage}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        raise SystemExit("usage: python -m bench.connections compare-connections|compare-outage")
    commands[sys.argv[1]]()
