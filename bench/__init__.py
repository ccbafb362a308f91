"""The benchmark (bench/README.md): `bench/run` is the one command, `bench.driver` its
entry point. One module per concern:

- `database`: the throwaway PostgreSQL, the datasets loaded into it, statement counts;
- `server`: one gunicorn per dataset, its environment and its CPU time;
- `client`: HTTP to the server (httpx): tokens, setup reads, cursor paths;
- `scenarios`: what is measured, the ids and paths each request needs;
- `measure`: wrk runs, their merging, the interleaved growth runs, whole walks;
- `floor`: the exact SQL of each request (captured in-process) and its replay alone;
- `explain`: EXPLAIN (ANALYZE, BUFFERS) of every read query, and its check;
- `report`: the tables and the targets;
- `connections`: connection modes compared (not part of `bench/run`);
- `writes`: appends and task creates against the lean baseline `peer` (FastAPI +
  SQLModel), interleaved (`bench/run --writes`).

`load`, `capture` and `profile` are commands of their own (`python -m bench.load` ...).
"""

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
API = "/api/v1"


def log(message):
    """A timestamped progress line on stderr (stdout carries the tables)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
