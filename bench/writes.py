"""Writes against a lean baseline: the rows "Writes" of bench/README.md.

    bench/run --writes          (or: .venv/bin/python -m bench.writes [--seconds 1 --rounds 6])

On a throwaway PostgreSQL configured as the main benchmark's (durable commits,
pg_stat_statements) it starts, on one database, the Procfile's `web:` line and the
lean baseline `bench/peer.py` (FastAPI + SQLModel under uvicorn, 4 workers as
gunicorn has), and measures appending a message and creating a task on each:

- p50 / p95 at concurrency 1 and requests per second at 8 (wrk), in short runs
  that alternate between the two servers (ours, peer, peer, ours, …) so that a
  slow spell of the shared machine hits both alike; each figure is the median over
  the rounds;
- statements per write: what each server sent, counted by pg_stat_statements over
  a run of its own (BEGIN and COMMIT included); the foreign-key checks PostgreSQL
  runs inside an INSERT are counted apart (`SELECT 1 FROM ONLY … FOR KEY SHARE`);
- contention: 16 writers appending to one conversation, then a check that its
  `seq` has no gap and `message_count` matches.

Results go to bench/results/writes.md (and .json).
"""

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

from testing.pgserver import free_port
from testing.servers import GunicornServer, HttpClient, collectstatic, production_env, run_release

from . import log
from .database import start_postgres, statement_counts, statements_reset
from .measure import run_wrk
from .scenarios import Scenario
from .server import BENCH_ENV

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
API = "/api/v1"


class PeerServer:
    """bench/peer.py under uvicorn on a free port."""

    def __init__(self, env, workers=4):
        self.port = free_port()
        self.env = env
        self.workers = workers
        self.process = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self.process = subprocess.Popen(
            [
                str(ROOT / ".venv" / "bin" / "uvicorn"),
                "bench.peer:app",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            cwd=ROOT,
            env=self.env,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                httpx.get(self.url + "/docs", timeout=2, trust_env=False)
                return self
            except httpx.TransportError:
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError("the peer did not start")

    def __exit__(self, *exc):
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            self.process.wait(timeout=20)


def scenarios(token, conversations):
    values = ",".join(str(c) for c in conversations)
    return {
        "append a message": Scenario(
            "append a message",
            "POST",
            f"{API}/conversations/{{t}}/messages/",
            token,
            body={"role": "user", "content": "Remind me to send the report ({n})."},
            values=values,
        ),
        "create a task": Scenario(
            "create a task",
            "POST",
            f"{API}/tasks/",
            token,
            body={"title": "Bench task {n}", "description": "Created by the load driver."},
        ),
    }


def alternated(servers, scenario, concurrency, seconds, rounds, workdir):
    """wrk runs alternating between `servers` (ABBA…); per server, the list of runs."""
    runs = {label: [] for label in servers}
    labels = list(servers)
    for round_number in range(rounds):
        order = labels if round_number % 2 == 0 else labels[::-1]
        for label in order:
            result = run_wrk(servers[label].port, scenario, concurrency, seconds, workdir)
            if result["errors"]:
                raise RuntimeError(f"{label} {scenario.name}: {result['errors']} errors")
            runs[label].append(result)
    return runs


def median_of(runs, key):
    return statistics.median(run[key] for run in runs)


def statements_per_request(url, server, scenario, seconds, workdir):
    statements_reset(url)
    result = run_wrk(server.port, scenario, 1, seconds, workdir)
    sent, checks = statement_counts(url)
    return sent / result["requests"], checks / result["requests"]


def check_gap_free(url, conversation_id):
    with psycopg.connect(url, autocommit=True) as conn:
        count, top, distinct, stored = conn.execute(
            "SELECT COUNT(*), MAX(seq), COUNT(DISTINCT seq),"
            " (SELECT message_count FROM chat_conversation WHERE id = %s)"
            " FROM chat_message WHERE conversation_id = %s",
            (conversation_id, conversation_id),
        ).fetchone()
    return count == top == distinct == stored, count


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=2, help="per wrk run")
    parser.add_argument("--rounds", type=int, default=6, help="runs per server and figure")
    args = parser.parse_args(argv)
    seconds = args.seconds
    report = {"seconds": seconds, "rounds": args.rounds}
    with tempfile.TemporaryDirectory(prefix="bench-writes-") as workdir:
        os.chmod(workdir, 0o755)
        postgres = start_postgres(workdir)
        try:
            url = postgres.url
            collectstatic()
            env = production_env(url, **BENCH_ENV)
            run_release(env)
            with GunicornServer(env) as ours, PeerServer(env) as peer:
                servers = {"ours": ours, "peer": peer}
                client = HttpClient(ours.url)
                client.login("bench-writer", "Quiet-Harbor-7731-Lantern")
                conversations = [
                    client.post(f"{API}/conversations/", {"title": f"c{i}"}).json()["id"]
                    for i in range(17)
                ]
                shared, own = conversations[0], conversations[1:]
                for server in servers.values():
                    for scenario in scenarios(client.token, own).values():
                        run_wrk(server.port, scenario, 8, 1, workdir)  # warm every worker
                for name, scenario in scenarios(client.token, own).items():
                    log(f"writes: {name}")
                    c1 = alternated(servers, scenario, 1, seconds, args.rounds, workdir)
                    c8 = alternated(servers, scenario, 8, seconds, args.rounds, workdir)
                    row = {}
                    for label, server in servers.items():
                        sent, checks = statements_per_request(url, server, scenario, 1, workdir)
                        row[label] = {
                            "p50": median_of(c1[label], "p50"),
                            "p95": median_of(c1[label], "p95"),
                            "rps_c1": median_of(c1[label], "rps"),
                            "rps_c8": median_of(c8[label], "rps"),
                            "statements": sent,
                            "foreign_key_checks": checks,
                        }
                    report[name] = row
                log("writes: 16 writers, one conversation")
                contention = Scenario(
                    "16 writers, one conversation",
                    "POST",
                    f"{API}/conversations/{shared}/messages/",
                    client.token,
                    body={"role": "user", "content": "Contended append ({n})."},
                )
                runs = alternated(servers, contention, 16, seconds, args.rounds, workdir)
                gap_free, messages = check_gap_free(url, shared)
                report["16 writers, one conversation"] = {
                    label: {
                        "p50": median_of(runs[label], "p50"),
                        "p95": median_of(runs[label], "p95"),
                        "rps_c16": median_of(runs[label], "rps"),
                    }
                    for label in servers
                }
                report["contention_check"] = {"gap_free": gap_free, "messages": messages}
        finally:
            postgres.stop("immediate")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "writes.json").write_text(json.dumps(report, indent=2))
    table = render(report)
    (RESULTS / "writes.md").write_text(table + "\n")
    print(table)


def render(report):
    lines = [
        f"Writes, ours (Procfile `web:`) against the lean baseline (bench/peer.py: FastAPI +"
        f" SQLModel, uvicorn, 4 workers) on one PostgreSQL; {report['rounds']} alternating wrk"
        f" runs of {report['seconds']} s per server and figure, medians.",
        "",
        "| write | server | p50 ms c=1 | p95 ms c=1 | req/s c=8 | statements sent"
        " | FK checks | p50 speed vs peer |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ("append a message", "create a task"):
        row = report[name]
        for label in ("ours", "peer"):
            figures = row[label]
            speed = row["peer"]["p50"] / figures["p50"]
            lines.append(
                f"| {name} | {label} | {figures['p50']:.2f} | {figures['p95']:.2f} |"
                f" {figures['rps_c8']:.0f} | {figures['statements']:.1f} |"
                f" {figures['foreign_key_checks']:.1f} | {speed:.2f}x |"
            )
    contended = report["16 writers, one conversation"]
    check = report["contention_check"]
    lines += [
        "",
        "| 16 writers, one conversation | p50 ms | p95 ms | req/s |",
        "|---|---:|---:|---:|",
    ]
    for label in ("ours", "peer"):
        figures = contended[label]
        lines.append(
            f"| {label} | {figures['p50']:.2f} | {figures['p95']:.2f} | {figures['rps_c16']:.0f} |"
        )
    lines.append(
        f"\nAfter it: {check['messages']} messages in the contended conversation,"
        f" seq gap-free and message_count exact: {'yes' if check['gap_free'] else 'NO'}."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
