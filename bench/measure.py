"""Load and timing: wrk runs of a scenario with the server's CPU time and
statement count, runs merged, the interleaved small/large growth runs (each
followed by its SQL floor), and whole walks of a conversation.
"""

import json
import os
import statistics
import subprocess
import time
from pathlib import Path

from . import BENCH, log
from .client import client, get_json, local_path
from .database import statements_count, statements_reset
from .floor import sql_floor
from .server import wait_idle


def run_wrk(port, scenario, concurrency, seconds, workdir):
    out = Path(workdir) / "wrk.json"
    env = {
        **os.environ,
        "BENCH_METHOD": scenario.method,
        "BENCH_PATH": scenario.path,
        "BENCH_VALUES": scenario.values,
        "BENCH_TOKEN": scenario.token,
        "BENCH_FOLLOW": "1" if scenario.follow else "0",
        "BENCH_OUT": str(out),
    }
    body = scenario.wrk_body()
    if body is not None:
        env["BENCH_BODY"] = body
    else:
        env.pop("BENCH_BODY", None)
    subprocess.run(
        [
            "wrk",
            "-t",
            str(concurrency),
            "-c",
            str(concurrency),
            "-d",
            f"{seconds}s",
            "--timeout",
            "30s",
            "-s",
            str(BENCH / "scenario.lua"),
            f"http://127.0.0.1:{port}",
        ],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=seconds + 60,
    )
    data = json.loads(out.read_text())
    seconds_run = data["duration_us"] / 1e6
    errors = sum(data[key] for key in data if key.startswith("errors_"))
    return {
        "p50": data["p50_us"] / 1000,
        "p95": data["p95_us"] / 1000,
        "p99": data["p99_us"] / 1000,
        "rps": data["requests"] / seconds_run if seconds_run else 0.0,
        "requests": data["requests"],
        "errors": errors,
    }


def measured(target, scenario, concurrency, seconds, workdir, count_statements):
    """One wrk run, with the CPU time the server (gunicorn and PostgreSQL) spent on it
    and, with `count_statements`, the statements PostgreSQL ran."""
    if count_statements:
        statements_reset(target.url)
    app, db = target.cpu_seconds()
    result = run_wrk(target.port, scenario, concurrency, seconds, workdir)
    app_after, db_after = target.cpu_seconds()
    result["app_cpu"], result["db_cpu"] = app_after - app, db_after - db
    if count_statements:
        result["statement_total"] = statements_count(target.url)
    return result


def merge(runs):
    """Runs of one scenario as one: mean percentiles, summed requests."""
    requests = sum(run["requests"] for run in runs)
    merged = {
        key: statistics.mean(run[key] for run in runs) for key in ("p50", "p95", "p99", "rps")
    }
    merged["p50_best"] = min(run["p50"] for run in runs)
    merged["requests"] = requests
    merged["errors"] = sum(run["errors"] for run in runs)
    merged["app_cpu_ms"] = merged["db_cpu_ms"] = None
    if requests:
        merged["app_cpu_ms"] = sum(run["app_cpu"] for run in runs) * 1000 / requests
        merged["db_cpu_ms"] = sum(run["db_cpu"] for run in runs) * 1000 / requests
    if all("statement_total" in run for run in runs) and requests:
        merged["statements"] = sum(run["statement_total"] for run in runs) / requests
    return merged


def describe(label, name, result):
    return (
        f"  {label} {name}: p50 {result['p50']:.2f} ms, p95 {result['p95']:.2f} ms, "
        f"{result['rps']:.0f} req/s"
        + (f", {result['statements']:.1f} statements/request" if "statements" in result else "")
        + (
            f", CPU {result['app_cpu_ms']:.2f} ms app + {result['db_cpu_ms']:.2f} ms db"
            if result.get("app_cpu_ms") is not None
            else ""
        )
        + (f", {result['errors']} ERRORS" if result["errors"] else "")
    )


def measure(target, scenarios, concurrency, args, workdir, count_statements):
    """Each scenario after a warm-up, on one dataset."""
    results = {}
    for scenario in scenarios:
        seconds = args.seconds
        if scenario.slow:
            # CPU-bound by design (the password hasher): more time, and no warm-up,
            # whose requests in flight would still be running.
            seconds = max(seconds, 6 if concurrency == 1 else 10)
        elif args.warmup:
            run_wrk(target.port, scenario, concurrency, args.warmup, workdir)
            wait_idle(target)
        results[scenario.name] = merge(
            [measured(target, scenario, concurrency, seconds, workdir, count_statements)]
        )
        wait_idle(target)
        log(describe(f"{target.label} c={concurrency}", scenario.name, results[scenario.name]))
    return results


def measure_growth(small, large, args, workdir):
    """The reads at concurrency 1 on both datasets, interleaved (A B B A, half the time
    each), with each one's SQL floor right after: a slow spell of the machine falls on
    both sizes alike, so their ratio holds even when the absolute numbers wander."""
    half = max(1, args.seconds // 2)
    out = {small.label: {}, large.label: {}}
    floors = {small.label: {}, large.label: {}}
    for index, name in enumerate(small.read_names):
        pair = (small, large) if index % 2 == 0 else (large, small)
        runs = {small.label: [], large.label: []}
        for target in pair:
            if args.warmup:
                run_wrk(target.port, target.reads[name], 1, args.warmup, workdir)
        for target in (*pair, *reversed(pair)):
            runs[target.label].append(
                measured(target, target.reads[name], 1, half, workdir, count_statements=True)
            )
        for target in pair:
            out[target.label][name] = merge(runs[target.label])
            floors[target.label][name] = sql_floor(target.url, target.captured[name]["queries"])
            log(describe(f"{target.label} c=1", name, out[target.label][name]))
    return out, floors


def walk_times(port, token, path, walks):
    """Wall time of fetching every page of a list, following `next`, `walks` times."""
    with client(port, token) as http:
        get_json(http, path)
        times, pages, rows = [], 0, 0
        for _ in range(walks):
            started = time.perf_counter()
            current, pages, rows = path, 0, 0
            while current:
                page = get_json(http, current)
                pages += 1
                rows += len(page["results"])
                current = local_path(page["next"]) if page["next"] else None
            times.append((time.perf_counter() - started) * 1000)
    return {
        "p50": statistics.median(times),
        "max": max(times),
        "pages": pages,
        "rows": rows,
        "walks": walks,
    }
