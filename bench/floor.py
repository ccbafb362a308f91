"""The exact SQL of each scenario and what it costs alone.

`capture` runs every scenario's request once through Django's handler in-process
(bench/capture.py) and keeps the statements the ORM sent; `sql_floor` replays one
request's statements back to back with plain psycopg on one open connection: the
time below which no HTTP stack could answer.
"""

import json
import pickle
import subprocess
import sys
import time
from pathlib import Path

from . import ROOT
from .database import connect_like_django


def capture(target, scenarios, workdir):
    """The exact SQL (with parameters for reads) of each scenario's request."""
    spec = Path(workdir) / f"capture-{target.label}.json"
    out = Path(workdir) / f"capture-{target.label}.pickle"
    spec.write_text(json.dumps([s.capture_spec() for s in scenarios]))
    subprocess.run(
        [sys.executable, "-m", "bench.capture", str(spec), str(out)],
        cwd=ROOT,
        env=target.env,
        check=True,
        stdout=subprocess.DEVNULL,  # the app logs every request to stdout
    )
    with open(out, "rb") as f:
        captured = pickle.load(f)
    for name, entry in captured.items():
        if entry["status"] not in (200, 201):
            raise RuntimeError(f"capture of {name!r} answered {entry['status']}")
    target.captured.update(captured)


def sql_floor(url, queries, seconds=1.0, warmup=20):
    """The queries of one request, back to back on one open connection, as the ORM sent them."""
    with connect_like_django(url) as conn:
        cur = conn.cursor()

        def once():
            for sql, params in queries:
                cur.execute(sql, params)
                cur.fetchall()

        for _ in range(warmup):
            once()
        times = []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline or len(times) < 30:
            started = time.perf_counter()
            once()
            times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {
        "p50": percentile(times, 50),
        "p95": percentile(times, 95),
        "p99": percentile(times, 99),
        "n": len(times),
    }


def percentile(values, p):
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]
