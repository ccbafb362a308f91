"""Filtered task pages against the plain page, in one run, requests interleaved.

    .venv/bin/python -m bench.filters [--users 100] [--rounds 400]

The figures of bench/README.md ("Filtered task pages"). A throwaway PostgreSQL
(`bench.database.start_postgres`: durable settings, pg_stat_statements), the
Procfile's release line, `--users` users loaded by bench/load.py (10,000 tasks
each: three in five with a due date, priorities, up to two of five tags), plus a
rare tag (`rare`, on one task in 200 of every user) so that the tag filter is
measured at both ends of its selectivity. Then, against the Procfile's `web:`
gunicorn with the bench's environment (bench/server.py), as the reader bench0000:

1. each scenario's exact SQL, captured in-process (bench/capture.py), and the
   EXPLAIN (ANALYZE, BUFFERS) check of bench/explain.py: index scans, no sequential
   scan of a large table, no Sort of more rows than it returns;
2. statements per request (pg_stat_statements) and CPU per request (gunicorn's
   and PostgreSQL's processes, from /proc), in a block of requests per scenario;
3. latency at concurrency 1 over one keep-alive connection: `--rounds` rounds,
   each sending every scenario once in a shuffled order, so that the shared
   machine's slow spells fall on all scenarios alike; p95 / the plain page's p95;
4. for the tag filters, the page query under EXPLAIN ANALYZE as the planner picks
   it, with bitmap scans off (the keyset walk of `task_owner_created` filtering
   `tags @>`), and with plain index scans off (the GIN bitmap, then a sort).

Prints the tables; nothing is kept.
"""

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import timedelta

import psycopg

from testing.servers import production_env, run_release

from . import API, load, log
from .client import client, get_json, local_path, token_for
from .database import (
    connect_like_django,
    run_loader,
    start_postgres,
    statements_count,
    statements_reset,
)
from .explain import explain, plan_nodes
from .floor import capture, percentile
from .scenarios import Scenario
from .server import BENCH_ENV, Target, wait_idle

PLAIN = "tasks, page 1"
RARE_TAG = "rare"


def scenario_paths(http):
    """(name, path) of every scenario: the plain page and each filter and ordering,
    first pages and, for a few, the page after them (the cursor's shape)."""
    week = [(load.NOW + timedelta(days=d)).strftime("%Y-%m-%dT%H:%M:%SZ") for d in (0, 7)]
    firsts = [
        (PLAIN, f"{API}/tasks/"),
        ("?ordering=due_at", f"{API}/tasks/?ordering=due_at"),
        ("?ordering=-priority", f"{API}/tasks/?ordering=-priority"),
        (
            "?due_after&due_before (a week), soonest first",
            f"{API}/tasks/?ordering=due_at&due_after={week[0]}&due_before={week[1]}",
        ),
        ("?due_before (overdue), pending", f"{API}/tasks/?completed=false&due_before={week[0]}"),
        ("?priority=high", f"{API}/tasks/?priority=high"),
        ("?tag=work (1 in 5)", f"{API}/tasks/?tag=work"),
        ("?tag=bills&tag=family (1 in 30)", f"{API}/tasks/?tag=bills&tag=family"),
        (f"?tag={RARE_TAG} (1 in 200)", f"{API}/tasks/?tag={RARE_TAG}"),
        (
            "combined: pending, high, #work, due this week, soonest first",
            f"{API}/tasks/?completed=false&priority=high&tag=work&ordering=due_at"
            f"&due_after={week[0]}&due_before={week[1]}",
        ),
    ]
    seconds = []
    for name in (PLAIN, "?ordering=due_at", "?tag=work (1 in 5)", "?priority=high"):
        path = dict(firsts)[name]
        seconds.append((f"{name}, page 2", local_path(get_json(http, path)["next"])))
    return firsts + seconds


def add_rare_tag(url):
    """One task in 200 of every user gets the tag RARE_TAG; then ANALYZE."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "UPDATE tasks_task SET tags = tags || %s::jsonb WHERE id %% 200 = 0",
            [json.dumps([RARE_TAG])],
        )
        conn.execute("VACUUM ANALYZE tasks_task")


def blocks(target, http, scenarios, count):
    """Statements and CPU (app, db) per request: `count` requests of each scenario."""
    out = {}
    for scenario in scenarios:
        for _ in range(20):
            get_json(http, scenario.path)
        wait_idle(target)
        statements_reset(target.url)
        app0, db0 = target.cpu_seconds()
        for _ in range(count):
            get_json(http, scenario.path)
        app1, db1 = target.cpu_seconds()
        out[scenario.name] = {
            "statements": statements_count(target.url) / count,
            "cpu_app_ms": (app1 - app0) * 1000 / count,
            "cpu_db_ms": (db1 - db0) * 1000 / count,
        }
    return out


def interleaved(http, scenarios, rounds, seed=16):
    """Latency (ms) of every scenario: each round sends each once, in a shuffled order."""
    rng = random.Random(seed)
    times = {s.name: [] for s in scenarios}
    order = list(scenarios)
    for _ in range(rounds):
        rng.shuffle(order)
        for scenario in order:
            started = time.perf_counter()
            answer = http.get(scenario.path)
            elapsed = (time.perf_counter() - started) * 1000
            if answer.status_code != 200:
                raise RuntimeError(f"{scenario.name}: {answer.status_code}")
            times[scenario.name].append(elapsed)
    return times


def tag_alternatives(url, captured, names):
    """The tag pages' query: the planner's plan, the keyset walk, the GIN bitmap."""
    settings = {
        "planner's choice": [],
        "keyset walk (bitmap scans off)": ["SET enable_bitmapscan = off"],
        "GIN bitmap + sort (index scans off)": ["SET enable_indexscan = off"],
    }
    rows = []
    with connect_like_django(url) as conn:
        cur = conn.cursor()
        for name in names:
            [(sql, params)] = [q for q in captured[name]["queries"] if "tasks_task" in q[0]]
            literal = cur.mogrify(sql, params)
            for label, sets in settings.items():
                cur.execute("RESET ALL")
                for statement in sets:
                    cur.execute(statement)
                best, shape = None, None
                for _ in range(5):
                    cur.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + literal)
                    plan = cur.fetchone()[0][0]
                    took = plan["Execution Time"]
                    if best is None or took < best:
                        best = took
                        nodes = list(plan_nodes(plan["Plan"]))
                        shape = " > ".join(
                            n["Node Type"] + (f" {n['Index Name']}" if "Index Name" in n else "")
                            for n in nodes
                        )
                        buffers = plan["Plan"].get("Shared Hit Blocks", 0) + plan["Plan"].get(
                            "Shared Read Blocks", 0
                        )
                rows.append((name, label, best, buffers, shape))
            cur.execute("RESET ALL")
    return rows


def run(args, workdir):
    log("starting PostgreSQL 15")
    pg = start_postgres(workdir)
    target = Target("filters", pg.url, production_env(pg.url, **BENCH_ENV), args.users, pg)
    try:
        log(f"migrations and {args.users} users")
        run_release(target.env)
        run_loader(target.env, args.users, args.jobs)
        add_rare_tag(target.url)
        target.start(workdir)
        token = token_for(target.port, "bench0000")
        with client(target.port, token) as http:
            scenarios = [Scenario(name, "GET", path, token) for name, path in scenario_paths(http)]
            names = [s.name for s in scenarios]
            log("capturing the SQL and checking the plans")
            capture(target, scenarios, workdir)
            _, checks = explain(target.url, target.captured, names)
            verdicts = {}
            for check in checks:
                for name in check["scenarios"]:
                    verdicts[name] = verdicts.get(name, True) and check["ok"]
            log(f"statements and CPU: {args.block} requests per scenario")
            costs = blocks(target, http, scenarios, args.block)
            log(f"latency: {args.rounds} interleaved rounds of {len(scenarios)} requests")
            times = interleaved(http, scenarios, args.rounds)
        tags = tag_alternatives(
            target.url, target.captured, [n for n in names if n.startswith("?tag=")]
        )
    finally:
        target.stop()
        pg.stop("immediate")
    return scenarios, verdicts, costs, times, tags


def render(args, scenarios, verdicts, costs, times, tags):
    plain_p95 = percentile(times[PLAIN], 95)
    lines = [
        f"{args.users} users x 10,000 tasks; {args.rounds} interleaved rounds at concurrency 1 "
        f"(one keep-alive connection); statements and CPU over {args.block} requests each.",
        "",
        "| page | p50 ms | p95 ms | p95 / plain | statements per read | CPU ms app + db "
        "| plan check |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for scenario in scenarios:
        name = scenario.name
        values = times[name]
        p95 = percentile(values, 95)
        cost = costs[name]
        lines.append(
            f"| {name} | {statistics.median(values):.2f} | {p95:.2f} | {p95 / plain_p95:.2f}x "
            f"| {cost['statements']:.1f} | {cost['cpu_app_ms']:.2f} + {cost['cpu_db_ms']:.2f} "
            f"| {'ok' if verdicts.get(name) else 'CHECK'} |"
        )
    lines += [
        "",
        "Tag filters' page query under EXPLAIN ANALYZE (best of 5):",
        "",
        "| page | plan | execution ms | buffers | nodes |",
        "|---|---|---:|---:|---|",
    ]
    for name, label, took, buffers, shape in tags:
        lines.append(f"| {name} | {label} | {took:.2f} | {buffers} | {shape} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=400)
    parser.add_argument("--block", type=int, default=300, help="requests per CPU/statement block")
    parser.add_argument("--jobs", type=int, default=2, help="loader processes")
    args = parser.parse_args(argv)
    if args.users < 2:
        sys.exit("--users must be at least 2 (bench/load.py's reader and writer)")
    workdir = tempfile.mkdtemp(prefix="chatbench-filters-")
    os.chmod(workdir, 0o755)
    try:
        result = run(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(render(args, *result), flush=True)


if __name__ == "__main__":
    main()
