"""Reads of two checkouts side by side: does a change leave the read path as fast?

    .venv/bin/python -m bench.ab OTHER_CHECKOUT [--this CHECKOUT]
                                 [--users 100 --seconds 2 --rounds 6]
                                 [--scenario NAME ...] [--out NAME]

`bench/run`'s table is one run on one machine; a later run on another machine, or
in a slower spell of a shared one, moves every figure by more than a change does.
This puts the two versions in one run instead. On one throwaway PostgreSQL (as
bench/run's, durable commits) loaded with bench/run's large dataset by this
checkout, it starts the Procfile's `web:` line of this checkout and of
`OTHER_CHECKOUT` (e.g. a `git worktree` of the commit the table was measured at),
both on that database, and runs each read scenario that both versions serve at
concurrency 1 and 8 in wrk runs that alternate between them (this, other, other,
this, …), so that a slow spell hits both alike. Each figure is the median over the
rounds. `--this` runs another checkout in this one's place (to compare two past
versions). Both read the schema this checkout migrated: compare versions whose
read queries that schema serves.

Results go to bench/results/ab.md (and .json).
"""

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

from testing.servers import GunicornServer, collectstatic, production_env, run_release

from . import log
from .database import run_loader, start_postgres
from .measure import run_wrk
from .scenarios import prepare
from .server import BENCH_ENV, WARM_CONNECTIONS, Target, wait_idle
from .writes import alternated

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

# The read scenarios of bench/README.md's main table (later ones filter on fields an
# older checkout does not have).
SCENARIOS = (
    "task detail",
    "tasks, page 1",
    "tasks, ?completed=false",
    "tasks, ?search=invoice",
    "tasks, deepest page",
    "conversations, page 1",
    "newest 100 messages",
)


def compare(servers, scenarios, concurrency, seconds, rounds, workdir):
    rows = {}
    for name, scenario in scenarios.items():
        log(f"ab: {name} at concurrency {concurrency}")
        runs = alternated(servers, scenario, concurrency, seconds, rounds, workdir)
        rows[name] = {
            label: {
                "p50": statistics.median(r["p50"] for r in runs[label]),
                "p95": statistics.median(r["p95"] for r in runs[label]),
                "rps": statistics.median(r["rps"] for r in runs[label]),
            }
            for label in servers
        }
    return rows


def render(report):
    lines = [
        f"Reads of `{report['this']}` (this) against `{report['other']}` (other), "
        f"on one PostgreSQL with {report['users']} users; {report['rounds']} alternating "
        f"wrk runs of {report['seconds']} s per version and figure, medians.",
        "",
    ]
    for concurrency in ("1", "8"):
        lines += [
            f"Concurrency {concurrency}:",
            "",
            "| scenario | this p50 ms | other p50 ms | this / other p50 | this req/s "
            "| other req/s |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, row in report[f"c{concurrency}"].items():
            this, other = row["this"], row["other"]
            lines.append(
                f"| {name} | {this['p50']:.2f} | {other['p50']:.2f} | "
                f"{this['p50'] / other['p50']:.2f} | {this['rps']:.0f} | {other['rps']:.0f} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", help="the other checkout (a directory with its own Procfile)")
    parser.add_argument("--this", default=str(ROOT), help="the checkout compared (default: this)")
    parser.add_argument("--users", type=int, default=100, help="bench/run's large dataset")
    parser.add_argument("--seconds", type=int, default=2, help="per wrk run")
    parser.add_argument("--rounds", type=int, default=6, help="runs per version and figure")
    parser.add_argument("--jobs", type=int, default=2, help="loader processes")
    parser.add_argument(
        "--scenario",
        action="append",
        choices=SCENARIOS,
        help="only this read scenario (repeatable; default: all of them)",
    )
    parser.add_argument(
        "--out", default="ab", help="results as bench/results/OUT.md and .json (default: ab)"
    )
    args = parser.parse_args(argv)
    this_root, other_root = Path(args.this).resolve(), Path(args.other).resolve()
    report = {
        "this": str(this_root),
        "other": str(other_root),
        "users": args.users,
        "seconds": args.seconds,
        "rounds": args.rounds,
    }
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as workdir:
        os.chmod(workdir, 0o755)
        postgres = start_postgres(workdir)
        target = this = other = None
        try:
            collectstatic()
            env = production_env(postgres.url, **BENCH_ENV)
            target = Target("this", postgres.url, env, args.users, postgres)
            log(f"ab: migrations and {args.users} users")
            run_release(env)
            run_loader(env, args.users, args.jobs)
            # This checkout prepares the scenarios (it probes writes, which an older
            # checkout may not manage on this schema).
            target.start(workdir)
            prepare(target, 8)
            if this_root != ROOT:
                this = GunicornServer(
                    env, log_path=Path(workdir) / "gunicorn-this.log", root=this_root
                ).start()
            other = GunicornServer(
                env, log_path=Path(workdir) / "gunicorn-other.log", root=other_root
            ).start()
            servers = {"this": this or target.server, "other": other}
            scenarios = {name: target.reads[name] for name in args.scenario or SCENARIOS}
            for server in servers.values():
                run_wrk(server.port, target.reads["tasks, page 1"], WARM_CONNECTIONS, 2, workdir)
            wait_idle(target)
            for concurrency in (1, 8):
                report[f"c{concurrency}"] = compare(
                    servers, scenarios, concurrency, args.seconds, args.rounds, workdir
                )
        finally:
            for server in (this, other):
                if server is not None:
                    server.stop()
            if target is not None:
                target.stop()
            postgres.stop()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(report, indent=2) + "\n")
    text = render(report)
    (RESULTS / f"{args.out}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
