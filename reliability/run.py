"""The reliability runs from the command line.

    python -m reliability.run            # the load run the suite does (about 30 s)
    python -m reliability.run --long     # the long run (about 6 min): 120 s of load, a
                                         # fault every 10 s, then schemathesis (all
                                         # phases, 300 examples an operation) against
                                         # the same gunicorn + PostgreSQL

Each starts a PostgreSQL of its own and the Procfile's gunicorn on it (127.0.0.1
only), prints a table of figures, writes them as JSON (--json), and exits 1 if any
acknowledged write was lost or duplicated, any answer was a 5xx other than a JSON
503, or the fuzzer found a failure. Needs the PostgreSQL 15 server binaries
(bin/setup-system) but no DATABASE_URL.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from . import fuzz, load

BOUNDED = {"seconds": 15, "clients": 6, "faults": "pg-fast@3,kill-worker@7,pg-immediate@10"}
LONG = {"seconds": 120, "clients": 12, "fault_every": 10, "fuzz_examples": 300}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m reliability.run", description=__doc__)
    parser.add_argument("--long", action="store_true", help="the long run (load and fuzzing)")
    parser.add_argument("--seconds", type=float, help="load duration")
    parser.add_argument("--clients", type=int, help="concurrent writers")
    parser.add_argument("--users", type=int, default=2, help="users the writers share")
    parser.add_argument(
        "--faults",
        help='e.g. "pg-fast@3,kill-worker@7,pg-immediate@10" (kind@seconds); "" for none',
    )
    parser.add_argument("--fault-every", type=float, help="a fault every N s, kinds in turn")
    parser.add_argument("--fuzz-examples", type=int, help="schemathesis examples per operation")
    parser.add_argument("--fuzz-max-time", type=int, help="schemathesis time budget, seconds")
    parser.add_argument("--no-fuzz", action="store_true", help="skip schemathesis")
    parser.add_argument(
        "--strict", action="store_true", help="schemathesis with every check (informational)"
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for gunicorn")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--workdir", help="logs and reports (default: a new temporary folder)")
    args = parser.parse_args(argv)

    preset = LONG if args.long else BOUNDED
    seconds = args.seconds or preset["seconds"]
    clients = args.clients or preset["clients"]
    if args.faults is not None:
        faults = load.parse_faults(args.faults)
    elif args.fault_every or "fault_every" in preset:
        faults = load.cycling_faults(seconds, args.fault_every or preset["fault_every"])
    else:
        faults = load.parse_faults(preset["faults"])
    fuzz_examples = args.fuzz_examples or preset.get("fuzz_examples")
    do_fuzz = bool(fuzz_examples) and not args.no_fuzz
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="reliability-"))
    workdir.mkdir(parents=True, exist_ok=True)
    env = dict(item.split("=", 1) for item in args.env)
    seed = args.seed if args.seed is not None else int(time.time())

    fuzz_outcome = {}

    def fuzz_after_load(base_url, postgres):
        print(f"fuzz: schemathesis, {fuzz_examples} examples per operation, all phases")
        started = time.monotonic()
        code, summary = fuzz.run_cli(
            base_url,
            max_examples=fuzz_examples,
            seed=args.seed,
            max_time=args.fuzz_max_time,
            strict=args.strict,
            report_dir=workdir / "schemathesis",
        )
        summary["exit_code"] = code
        summary["seconds"] = round(time.monotonic() - started, 1)
        fuzz_outcome.update(summary)

    print(f"reliability run ({'long' if args.long else 'bounded'}), logs in {workdir}")
    result = load.run_scenario(
        seconds=seconds,
        clients=clients,
        users=args.users,
        faults=faults,
        workdir=workdir,
        env=env,
        seed=seed,
        after=fuzz_after_load if do_fuzz else None,
    )
    report = {
        "load": result.figures,
        "faults": [
            {
                "kind": f.kind,
                "at_s": f.at,
                "detail": f.detail,
                "first_ack_after_s": f.recovered_after,
            }
            for f in result.faults
        ],
        "violations": result.violations,
        "samples": [list(map(str, sample)) for sample in result.samples],
    }
    if fuzz_outcome:
        report["fuzz"] = {k: v for k, v in fuzz_outcome.items() if k != "log_tail"}
    print_table(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    failed = bool(result.violations)
    if fuzz_outcome:
        if fuzz_outcome["exit_code"] != 0 or fuzz_outcome["status_5xx"]:
            failed = True
            print(fuzz_outcome.get("log_tail", ""))
    print("FAILED" if failed else "OK: nothing acknowledged was lost, no 5xx but JSON 503s")
    return 1 if failed else 0


def print_table(report):
    figures = report["load"]
    rows = [
        ("load duration (s)", figures["seconds"]),
        ("concurrent writers / users", f"{figures['clients']} / {figures['users']}"),
        ("requests sent", figures["requests"]),
        ("answers by status", figures["statuses"]),
        ("transport errors (reset, refused, timeout)", figures["transport_errors"]),
        ("retries", figures["retries"]),
        ("faults injected", figures["faults_injected"]),
        ("503 answers (all JSON)", figures["answers_503"]),
        ("5xx other than 503", figures["answers_5xx_not_503"]),
        ("acknowledged writes", figures["acknowledged_writes"]),
        ("  messages / task creates / completions", _split(figures)),
        ("acknowledged writes found afterwards", figures["acknowledged_writes_found"]),
        ("lost / stored twice / changed", _lost(figures)),
        ("retries answered from client_id (200)", figures["replayed_by_client_id"]),
        ("task creates recovered by search", figures["tasks_recovered_by_search"]),
        ("messages in database / conversations", _db(figures)),
        ("API listing mismatches", figures["api_listing_mismatches"]),
    ]
    for fault in report["faults"]:
        rows.append(
            (
                f"fault {fault['kind']} at {fault['at_s']:g} s",
                f"{fault['detail']}; first ack {fault['first_ack_after_s']} s after",
            )
        )
    if "fuzz" in report:
        fuzz_report = report["fuzz"]
        rows += [
            ("fuzz requests (schemathesis CLI)", fuzz_report["requests"]),
            ("fuzz 5xx", fuzz_report["status_5xx"]),
            ("fuzz failures by check", fuzz_report["failures"] or "none"),
            ("fuzz exit code / seconds", f"{fuzz_report['exit_code']} / {fuzz_report['seconds']}"),
        ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    for violation in report["violations"][:50]:
        print(f"  VIOLATION: {violation}")


def _split(f):
    return (
        f"{f['acknowledged_messages']} / {f['acknowledged_task_creates']}"
        f" / {f['acknowledged_task_completions']}"
    )


def _lost(f):
    return f"{f['lost']} / {f['stored_twice']} / {f['changed']}"


def _db(f):
    return f"{f['messages_in_database']} / {f['conversations']}"


if __name__ == "__main__":
    sys.exit(main())
