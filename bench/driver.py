"""The benchmark: load data, start the real server, drive it, print the table.

    bench/run                          # the whole thing (see bench/README.md)
    bench/run --small 2 --large 5      # smaller datasets, for a quick look
    bench/run --env GUNICORN_THREADS=1 # the same against another server setting

Steps: a throwaway PostgreSQL 15 (durable settings, pg_stat_statements) with two
databases, one per dataset size: `--small` users and `--large` users, each user as
bench/load.py makes them (the reader bench0000 and the writer bench0001 have the
same rows, ids included, in both). The Procfile's release line migrates each; a
gunicorn from the Procfile's web line serves each. Then:

1. the exact SQL of every scenario, captured through the ORM (bench/capture.py);
2. the read scenarios at concurrency 1 on both sizes, interleaved, with the
   server's statements per request (pg_stat_statements) and, right after each,
   the same SQL replayed with plain psycopg on one open connection: the floor;
3. EXPLAIN (ANALYZE, BUFFERS) of every read query on both sizes;
4. on the large size: the writes at concurrency 1, whole-conversation walks, and
   every scenario at the saturating concurrency.

Prints the tables and writes them, with the JSON and the plans, to bench/results/.
This module is the command line and the order of the steps; each step is a module
of its own (the list is in bench/__init__.py).
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from testing.servers import production_env, run_release

from . import API, BENCH, log
from .database import run_loader, second_database, start_postgres, table_rows
from .explain import explain
from .floor import capture
from .measure import measure, measure_growth, run_wrk, walk_times
from .report import machine, render, targets
from .scenarios import prepare
from .server import BENCH_ENV, WARM_CONNECTIONS, Target, server_description, wait_idle


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Load data, drive the server, print the table.")
    parser.add_argument("--small", type=int, default=10, help="users in the small dataset")
    parser.add_argument("--large", type=int, default=100, help="users in the large dataset")
    parser.add_argument("--seconds", type=int, default=4, help="measured seconds per scenario")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up seconds per scenario")
    parser.add_argument("--concurrency", type=int, default=8, help="the saturating concurrency")
    parser.add_argument("--jobs", type=int, default=2, help="loader processes")
    parser.add_argument(
        "--env", action="append", default=[], help="KEY=VALUE for the servers (e.g. tuning)"
    )
    parser.add_argument("--out", default=str(BENCH / "results"))
    parser.add_argument(
        "--render", action="store_true", help="only print the tables of OUT/results.json"
    )
    return parser.parse_args(argv)


def run(args, workdir):
    started = time.perf_counter()
    log("starting PostgreSQL 15")
    pg = start_postgres(workdir)
    small = large = None
    try:
        overrides = dict(item.split("=", 1) for item in args.env)
        small_url = second_database(pg.url, "chatbackend_small")
        small = Target(
            "small", small_url, production_env(small_url, **BENCH_ENV, **overrides), args.small, pg
        )
        large = Target(
            "large", pg.url, production_env(pg.url, **BENCH_ENV, **overrides), args.large, pg
        )
        for target in (small, large):
            log(f"{target.label}: migrations (the Procfile's release line), {target.users} users")
            run_release(target.env)
            run_loader(target.env, target.users, args.jobs)
            target.rows = table_rows(target.url)
        for target in (small, large):
            target.start(workdir)
            prepare(target, args.concurrency)
            capture(target, list(target.reads.values()) + list(target.writes.values()), workdir)
            # Every worker thread opens its database connection and fills its caches
            # on its first requests: do that now, not in the first scenario measured.
            run_wrk(target.port, target.reads["tasks, page 1"], WARM_CONNECTIONS, 2, workdir)
            wait_idle(target)
        log("reads at concurrency 1, both sizes interleaved, each with its SQL floor")
        c1, floors = measure_growth(small, large, args, workdir)
        explains = {}
        for target in (small, large):
            text, checks = explain(target.url, target.captured, target.read_names)
            (Path(args.out) / f"explain-{target.label}.txt").write_text(text)
            explains[target.label] = checks
        small.stop()
        log("large: writes at concurrency 1")
        c1[large.label].update(
            measure(large, list(large.writes.values()), 1, args, workdir, count_statements=True)
        )
        log("large: whole conversations")
        token = large.reads["tasks, page 1"].token
        c1k, c10k = large.info["conversation_1k"], large.info["conversation_10k"]
        walks = {
            "1k conversation, 1 page of 1000": walk_times(
                large.port, token, f"{API}/conversations/{c1k}/messages/?page_size=1000", 20
            ),
            "1k conversation, 20 pages of 50 (default size)": walk_times(
                large.port, token, f"{API}/conversations/{c1k}/messages/", 10
            ),
            "10k conversation, 10 pages of 1000": walk_times(
                large.port, token, f"{API}/conversations/{c10k}/messages/?page_size=1000", 5
            ),
        }
        log(f"large: every scenario at concurrency {args.concurrency}")
        cn = measure(
            large,
            list(large.reads.values()) + list(large.writes.values()),
            args.concurrency,
            args,
            workdir,
            count_statements=False,
        )
        for name in large.missing:
            c1[large.label][name] = None
            cn[name] = None

        def summary(target, extra):
            return {
                "users": target.users,
                "rows": target.rows,
                "info": target.info,
                "c1": c1[target.label],
                "floor": floors[target.label],
                "explain": explains[target.label],
                "queries": {n: len(e["queries"]) for n, e in target.captured.items()},
                "sql": {n: [q for q, _ in e["queries"]] for n, e in target.captured.items()},
                "missing": target.missing,
                **extra,
            }

        report = {
            "machine": machine(),
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "small": summary(small, {}),
            "large": summary(large, {"cN": cn, "walks": walks}),
            "seconds": args.seconds,
            "warmup": args.warmup,
            "concurrency": args.concurrency,
            "read_names": large.read_names,
            "server": server_description(overrides),
        }
        report["targets"] = targets(report)
        report["elapsed_s"] = time.perf_counter() - started
        return report
    finally:
        for target in (small, large):
            if target is not None:
                target.stop()
        pg.stop("immediate")


def main(argv=None):
    args = parse_args(argv)
    if args.render:
        print(render(json.loads((Path(args.out) / "results.json").read_text())))
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: bench/run installs it")
    if args.small < 2 or args.large <= args.small:
        sys.exit("--small must be at least 2 (the reader and the writer), --large larger")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="chatbench-")
    os.chmod(workdir, 0o755)
    try:
        report = run(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    (Path(args.out) / "results.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    table = render(report)
    print(table, flush=True)
    (Path(args.out) / "results.md").write_text(table + "\n")
    log(f"done in {report['elapsed_s']:.0f} s; results in {args.out}")


if __name__ == "__main__":
    main()
