"""The results as tables (results.md, bench/README.md) and the targets they are held to.

`render(report)` turns the JSON of a run into the Markdown that `bench/run` prints;
`targets(report)` checks the figures against the targets of issue 7.
"""

import os
import platform
import subprocess
from pathlib import Path

from . import load


def machine():
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    pg = subprocess.run(
        [str(Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")) / "postgres"), "-V"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0]
    return (
        f"{os.cpu_count()} cores ({cpu}){memory}; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}; {pg}; {wrk.split(' Copyright')[0]}"
    )


def ms(value):
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def cpu_text(result):
    if result.get("app_cpu_ms") is None:
        return "-"
    return f"{result['app_cpu_ms']:.2f} + {result['db_cpu_ms']:.2f}"


def ratio(a, b):
    return f"{a / b:.2f}" if a and b else "-"


def render(report):
    lines = []
    add = lines.append
    small, large = report["small"], report["large"]
    add(f"- Machine: {report['machine']}")
    add(f"- Date: {report['date']}; the whole run took {report['elapsed_s'] / 60:.1f} min")
    add(
        f"- Data: small = {small['users']} users ({small['rows']:,} rows), large = "
        f"{large['users']} users ({large['rows']:,} rows); every user has 10,000 tasks, "
        "1,002 conversations and ~31,000 messages (bench/load.py)."
    )
    add(f"- Server: the Procfile's web line; {report['server']}.")
    add(
        f"- Load: wrk, one connection per thread, {report['seconds']} s per scenario "
        f"after {report['warmup']} s of warm-up, on the same 2 cores as the server."
    )
    add("")
    add(
        "Concurrency 1, large dataset. ORM queries = what the ORM sent (captured in-process); "
        "statements = what the server sent PostgreSQL per request (pg_stat_statements: with any "
        "connection health check and BEGIN/COMMIT; not the foreign-key checks PostgreSQL "
        "runs inside a write); CPU = gunicorn + PostgreSQL CPU "
        "time per request (from /proc); SQL floor = the same SQL with plain psycopg; "
        "growth = p50 large / p50 small, each the better of two interleaved runs "
        "(small, large, large, small), so that a slow spell of the shared machine does not "
        "pass for growth."
    )
    add("")
    add(
        "| scenario | p50 ms | p95 ms | p99 ms | req/s | ORM queries | statements "
        "| CPU ms app + db | SQL floor p50 ms | HTTP/SQL | growth | floor growth |"
    )
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, result in large["c1"].items():
        if result is None:
            add(f"| {name} | n/a: {large['missing'].get(name, '')} ||||||||||| ")
            continue
        floor = large["floor"].get(name)
        small_result = small["c1"].get(name)
        small_floor = small["floor"].get(name)
        add(
            f"| {name} | {ms(result['p50'])} | {ms(result['p95'])} | {ms(result['p99'])} "
            f"| {result['rps']:.0f} | {large['queries'].get(name, '-')} "
            f"| {result.get('statements', 0):.1f} "
            f"| {cpu_text(result)} "
            f"| {ms(floor['p50']) if floor else '-'} "
            f"| {ratio(result['p50'], floor['p50']) if floor else '-'} "
            f"| {ratio(result['p50_best'], small_result['p50_best']) if small_result else '-'} "
            f"| {ratio(floor['p50'], small_floor['p50']) if floor and small_floor else '-'} |"
        )
    add("")
    cores = os.cpu_count() or 1
    add(
        f"Concurrency {report['concurrency']} (saturates the {cores} cores), large dataset. "
        f"Ceiling = {cores} cores / (app + db CPU per request): the rate this server would "
        "reach if it had the cores to itself (wrk and everything else on the machine "
        "take their share of the measured req/s)."
    )
    add("")
    add(
        "| scenario | p50 ms | p95 ms | p99 ms | req/s | errors | CPU ms app + db | ceiling req/s |"
    )
    add("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, result in large["cN"].items():
        if result is None:
            add(f"| {name} | n/a: {large['missing'].get(name, '')} |||||||")
            continue
        cpu = (result["app_cpu_ms"] or 0) + (result["db_cpu_ms"] or 0)
        add(
            f"| {name} | {ms(result['p50'])} | {ms(result['p95'])} | {ms(result['p99'])} "
            f"| {result['rps']:.0f} | {result['errors']} | {cpu_text(result)} "
            f"| {f'{cores * 1000 / cpu:.0f}' if cpu else '-'} |"
        )
    add("")
    add(
        "Whole conversations at concurrency 1, large dataset (wall time of every page, "
        "in order, over one keep-alive connection)"
    )
    add("")
    add("| walk | pages | messages | p50 ms | max ms |")
    add("|---|---:|---:|---:|---:|")
    for name, walk in large["walks"].items():
        add(
            f"| {name} | {walk['pages']} | {walk['rows']:,} | {ms(walk['p50'])} "
            f"| {ms(walk['max'])} |"
        )
    add("")
    add("Targets of issue 7 (concurrency 1 unless said)")
    add("")
    add("| target | measured | holds |")
    add("|---|---|---|")
    for target, measured, holds in report["targets"]:
        add(f"| {target} | {measured} | {'yes' if holds else 'NO'} |")
    add("")
    for label in ("small", "large"):
        checks = report[label]["explain"]
        bad = [c for c in checks if not c["ok"]]
        add(
            f"EXPLAIN (ANALYZE, BUFFERS), {label} dataset: {len(checks) - len(bad)} of "
            f"{len(checks)} distinct read queries use an index, with no sort and no "
            f"sequential scan of a large table (bench/results/explain-{label}.txt)"
        )
        for check in bad:
            add(f"  CHECK {' | '.join(check['scenarios'])}: {check['sql'][:150]}...")
    return "\n".join(lines)


SINGLE_READS = (
    "task detail",
    "tasks, page 1",
    "tasks, ?completed=false",
    f"tasks, ?search={load.SEARCH_WORD}",
    "tasks, deepest page",
    "conversations, page 1",
)


def targets(report):
    small, large = report["small"], report["large"]
    c1, cn, walks = large["c1"], large["cN"], large["walks"]
    rows = []

    def get(name, key, source=c1):
        result = source.get(name)
        return result[key] if result else None

    worst = max(SINGLE_READS, key=lambda n: get(n, "p95") or 0)
    rows.append(
        (
            "single-object and single-page reads p95 <= 20 ms",
            f"worst p95 {ms(get(worst, 'p95'))} ms ({worst})",
            (get(worst, "p95") or 1e9) <= 20,
        )
    )
    p95 = get("newest 100 messages", "p95")
    rows.append(("newest 100 messages p95 <= 50 ms", f"p95 {ms(p95)} ms", (p95 or 1e9) <= 50))
    p95 = get("1k conversation, one page of 1000", "p95")
    walk = walks["1k conversation, 20 pages of 50 (default size)"]
    rows.append(
        (
            "all of a 1,000-message conversation <= 150 ms",
            f"one page of 1000: p95 {ms(p95)} ms; 20 pages of 50: p50 {ms(walk['p50'])}, "
            f"max {ms(walk['max'])} ms",
            (p95 or 1e9) <= 150 and walk["max"] <= 150,
        )
    )
    deep, first = get("tasks, deepest page", "p50"), get("tasks, page 1", "p50")
    rows.append(
        (
            "deepest keyset page within 1.2x of page 1",
            f"p50 {ms(deep)} / {ms(first)} ms = {ratio(deep, first)}x",
            bool(deep and first and deep / first <= 1.2),
        )
    )
    names = [n for n in report["read_names"] if c1.get(n)]
    most_orm = max(names, key=lambda n: large["queries"].get(n, 0))
    most_server = max(names, key=lambda n: c1[n].get("statements", 0))
    rows.append(
        (
            "at most 3 SQL queries per read request, authentication included",
            f"ORM: at most {large['queries'][most_orm]} ({most_orm}); PostgreSQL ran at most "
            f"{c1[most_server]['statements']:.1f} statements per request ({most_server})",
            large["queries"][most_orm] <= 3 and c1[most_server]["statements"] <= 3.05,
        )
    )
    p50 = get("tasks, page 1", "p50")
    rows.append(("page-1 reads p50 <= 2.5 ms", f"p50 {ms(p50)} ms", (p50 or 1e9) <= 2.5))
    concurrency = report["concurrency"]
    rps = get("tasks, page 1", "rps", cn)
    rows.append(
        (
            f"page-1 reads >= 1,000 req/s (concurrency {concurrency})",
            f"{rps:.0f} req/s" if rps else "-",
            (rps or 0) >= 1000,
        )
    )
    rps = get("newest 100 messages", "rps", cn)
    rows.append(
        (
            f"newest 100 messages >= 580 req/s (concurrency {concurrency})",
            f"{rps:.0f} req/s" if rps else "-",
            (rps or 0) >= 580,
        )
    )
    growth = [
        (n, c1[n]["p50_best"] / small["c1"][n]["p50_best"]) for n in names if small["c1"].get(n)
    ]
    worst_growth = max(growth, key=lambda item: item[1])
    rows.append(
        (
            f"reads no slower with {large['users'] // small['users']}x the data "
            "(p50 large/small <= 1.2)",
            f"worst {worst_growth[1]:.2f}x ({worst_growth[0]})",
            worst_growth[1] <= 1.2,
        )
    )
    bad = [c for label in ("small", "large") for c in report[label]["explain"] if not c["ok"]]
    total = sum(len(report[label]["explain"]) for label in ("small", "large"))
    rows.append(
        (
            "every hot query: an index scan, no seq scan, no sort",
            f"{total - len(bad)} of {total} plans",
            not bad,
        )
    )
    return rows
