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
"""

import argparse
import http.client
import json
import os
import pickle
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import psycopg

from testing.pgserver import TempPostgres, free_port
from testing.servers import GunicornServer, production_env, run_release

from . import load

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
API = "/api/v1"

# The server runs with the production settings; these only lift the limits that a
# load test is meant to pass (one user sends thousands of requests a second) and
# keep the access token alive for the whole run. A per-second window keeps the
# per-user throttle's history about as short as production's 2000/minute would.
BENCH_ENV = {
    "THROTTLE_RATE_USER": "100000/s",
    "THROTTLE_RATE_AUTH": "100000/s",
    "JWT_ACCESS_MINUTES": "240",
    "GUNICORN_LOG_LEVEL": "warning",
}

# PostgreSQL as production runs it: durable commits (TempPostgres turns them off
# for the tests), shared buffers that hold the hot indexes, no checkpoint during
# the run, and pg_stat_statements to count what each request sends.
PG_CONF = """
fsync = on
synchronous_commit = on
full_page_writes = on
shared_buffers = 1GB
max_wal_size = 8GB
checkpoint_timeout = 30min
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track_utility = on
"""

# A sequential scan of a table larger than this many pages fails the EXPLAIN check
# (auth_user fits in one page: the planner rightly reads it whole).
SEQ_SCAN_PAGES = 8
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Connections that reach every gunicorn worker thread (8 workers x 4 threads at most).
WARM_CONNECTIONS = 32


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- PostgreSQL -------------------------------------------------------------------


def start_postgres(workdir):
    root = Path(workdir) / "pg"
    root.mkdir()
    os.chmod(root, 0o755)
    server = TempPostgres(root, free_port())
    server.init()
    with open(server.data / "postgresql.conf", "a") as conf:
        conf.write(PG_CONF)
    server.start()
    server.create_database()
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    return server


def second_database(url, name):
    """CREATE DATABASE `name` on the server of `url`; returns its URL."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urllib.parse.urlsplit(url)
    other = urllib.parse.urlunsplit(parts._replace(path="/" + name))
    with psycopg.connect(other, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    return other


def statements_reset(url):
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")


def statements_count(url):
    """Statements the server ran in this database since the reset (this query excluded)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT COALESCE(SUM(calls), 0) FROM pg_stat_statements "
            "WHERE query NOT ILIKE '%pg_stat_statements%' "
            "AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchone()
    return int(row[0])


# -- HTTP helpers -----------------------------------------------------------------


class Client:
    """A keep-alive HTTP/1.1 client for setup and for timing whole walks."""

    def __init__(self, port, token=None):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.token = token

    def request(self, method, path, body=None):
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = orjson.dumps(body)
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path, body=data, headers=headers)
        response = self.conn.getresponse()
        payload = response.read()
        return response.status, (orjson.loads(payload) if payload else None)

    def get(self, path):
        status, data = self.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path}: {status} {data}")
        return data


def local_path(url):
    parts = urllib.parse.urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def with_query(path, **params):
    parts = urllib.parse.urlsplit(path)
    query = dict(urllib.parse.parse_qsl(parts.query))
    for key, value in params.items():
        if value is None:
            query.pop(key, None)
        else:
            query[key] = str(value)
    return parts.path + ("?" + urllib.parse.urlencode(query) if query else "")


def token_for(port, username):
    status, data = Client(port).request(
        "POST", f"{API}/auth/token/", {"username": username, "password": load.PASSWORD}
    )
    if status != 200:
        raise RuntimeError(f"token for {username}: {status} {data}")
    return data["access"]


# -- the scenarios ----------------------------------------------------------------


class Scenario:
    """One request (or chain of requests, with `follow`) that wrk repeats."""

    def __init__(
        self,
        name,
        method,
        path,
        token,
        body=None,
        values="",
        follow=False,
        sql_path=None,
        slow=False,
    ):
        self.name = name
        self.method = method
        self.path = path
        self.token = token
        self.body = body
        self.values = values  # comma-separated; wrk thread n puts value n for "{t}"
        self.follow = follow
        self.sql_path = sql_path or path
        self.slow = slow  # needs a longer run for enough samples

    def first_value(self):
        return self.values.split(",")[0] if self.values else ""

    def concrete_body(self):
        if self.body is None:
            return None
        text = json.dumps(self.body).replace("{n}", "capture").replace("{t}", self.first_value())
        data = json.loads(text)
        if data.get("conversation_id") is not None:
            data["conversation_id"] = int(data["conversation_id"])
        return data

    def capture_spec(self):
        return {
            "name": self.name,
            "method": self.method,
            "path": self.sql_path.replace("{t}", self.first_value()),
            "token": self.token,
            "body": self.concrete_body(),
        }

    def wrk_body(self):
        if self.body is None:
            return None
        # A conversation_id is an integer: "{t}" stands unquoted in the JSON.
        return json.dumps(self.body).replace('"{t}"', "{t}")


class Target:
    """One dataset: its database, its server and the scenarios against them."""

    def __init__(self, label, url, env, users, postgres):
        self.label = label
        self.url = url
        self.env = env
        self.users = users
        self.postgres = postgres
        self.server = None
        self.reads = {}
        self.writes = {}
        self.info = {}
        self.captured = {}
        self.missing = {}

    @property
    def port(self):
        return self.server.port

    @property
    def read_names(self):
        return list(self.reads)

    def start(self, workdir):
        self.server = GunicornServer(
            self.env, log_path=Path(workdir) / f"gunicorn-{self.label}.log"
        )
        self.server.start()

    def stop(self):
        if self.server is not None:
            self.server.stop()

    def cpu_seconds(self):
        """CPU time so far of this server's gunicorn processes and of PostgreSQL's."""
        postmaster = int((self.postgres.data / "postmaster.pid").read_text().split()[0])
        app = db = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                pid = int(stat.parent.name)
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, ValueError, IndexError):
                continue  # the process has gone
            ticks = int(fields[11]) + int(fields[12])  # utime, stime
            if fields[3] == str(self.server.process.pid):  # gunicorn's session
                app += ticks
            elif pid == postmaster or fields[1] == str(postmaster):
                db += ticks
        return app / CLOCK_TICKS, db / CLOCK_TICKS


def prepare(target, concurrency):
    """Tokens, ids and paths the scenarios use (reader bench0000, writer bench0001)."""
    with psycopg.connect(target.url, autocommit=True) as conn:

        def one(sql, *params):
            return conn.execute(sql, params).fetchone()[0]

        reader = one("SELECT id FROM auth_user WHERE username = 'bench0000'")
        writer = one("SELECT id FROM auth_user WHERE username = 'bench0001'")
        task = one(
            "SELECT id FROM tasks_task WHERE owner_id = %s ORDER BY id OFFSET 5000 LIMIT 1",
            reader,
        )
        long_1k = one(
            "SELECT id FROM chat_conversation WHERE owner_id = %s AND message_count = 1000"
            " ORDER BY id LIMIT 1",
            reader,
        )
        long_10k = one(
            "SELECT id FROM chat_conversation WHERE owner_id = %s AND message_count >= 10000"
            " ORDER BY id LIMIT 1",
            reader,
        )
        writer_conversations = [
            row[0]
            for row in conn.execute(
                "SELECT id FROM chat_conversation WHERE owner_id = %s AND message_count < 100"
                " ORDER BY id LIMIT %s",
                (writer, max(concurrency, 1)),
            )
        ]
        reader_tasks = one("SELECT COUNT(*) FROM tasks_task WHERE owner_id = %s", reader)

    port = target.port
    reader_token = token_for(port, "bench0000")
    writer_token = token_for(port, "bench0001")
    client = Client(port, reader_token)

    # The deepest page of 20 in the default ordering: walk pages of 100 to just
    # before the last 20 tasks, and keep that cursor.
    path = f"{API}/tasks/?page_size=100"
    remaining = reader_tasks - 20
    while remaining > 0:
        page = client.get(with_query(path, page_size=min(100, remaining)))
        remaining -= len(page["results"])
        path = local_path(page["next"])
    deep = with_query(path, page_size=None)
    last = client.get(deep)
    if len(last["results"]) != 20 or last["next"] is not None:
        raise RuntimeError("the deep cursor does not point at the last page")

    # A page in the middle of the 10k walk, for its SQL (the first page has no cursor).
    walk_10k = f"{API}/conversations/{long_10k}/messages/?page_size=1000"
    middle = walk_10k
    for _ in range(5):
        middle = local_path(client.get(middle)["next"])

    # The load's clock's week, for the due-date filter.
    week = [(load.NOW + timedelta(days=d)).strftime("%Y-%m-%dT%H:%M:%SZ") for d in (0, 7)]
    reads = [
        Scenario("task detail", "GET", f"{API}/tasks/{task}/", reader_token),
        Scenario("tasks, page 1", "GET", f"{API}/tasks/", reader_token),
        Scenario("tasks, ?completed=false", "GET", f"{API}/tasks/?completed=false", reader_token),
        Scenario(
            f"tasks, ?search={load.SEARCH_WORD}",
            "GET",
            f"{API}/tasks/?search={load.SEARCH_WORD}",
            reader_token,
        ),
        Scenario("tasks, deepest page", "GET", deep, reader_token),
        Scenario("tasks, ?ordering=due_at", "GET", f"{API}/tasks/?ordering=due_at", reader_token),
        Scenario(
            "tasks, ?ordering=-priority", "GET", f"{API}/tasks/?ordering=-priority", reader_token
        ),
        Scenario(
            "tasks, due this week, soonest first",
            "GET",
            f"{API}/tasks/?completed=false&ordering=due_at&due_after={week[0]}"
            f"&due_before={week[1]}",
            reader_token,
        ),
        Scenario(
            "tasks, ?tag=bills&tag=family",
            "GET",
            f"{API}/tasks/?tag=bills&tag=family",
            reader_token,
        ),
        Scenario("tasks, ?priority=high", "GET", f"{API}/tasks/?priority=high", reader_token),
        Scenario("conversations, page 1", "GET", f"{API}/conversations/", reader_token),
        Scenario(
            "newest 100 messages",
            "GET",
            f"{API}/conversations/{long_10k}/messages/?ordering=-seq&page_size=100",
            reader_token,
        ),
        Scenario(
            "1k conversation, one page of 1000",
            "GET",
            f"{API}/conversations/{long_1k}/messages/?page_size=1000",
            reader_token,
        ),
        Scenario(
            "10k conversation, each page of 1000",
            "GET",
            walk_10k,
            reader_token,
            follow=True,
            sql_path=middle,
        ),
    ]
    values = ",".join(str(c) for c in writer_conversations)
    writes = [
        Scenario(
            "append a message",
            "POST",
            f"{API}/conversations/{{t}}/messages/",
            writer_token,
            body={
                "role": "user",
                "content": "Please remind me to send the quarterly report to finance "
                "before Friday, and add the invoice numbers ({n}).",
            },
            values=values,
        ),
        Scenario(
            "create a task",
            "POST",
            f"{API}/tasks/",
            writer_token,
            body={"title": "Bench task {n}", "description": "Created by the load driver."},
        ),
        Scenario(
            "chat turn (default agent)",
            "POST",
            f"{API}/chat/",
            writer_token,
            body={"message": "add a task: call the plumber {n}", "conversation_id": "{t}"},
            values=values,
        ),
        Scenario(
            "obtain a token",
            "POST",
            f"{API}/auth/token/",
            "",
            body={"username": "bench0001", "password": load.PASSWORD},
            slow=True,
        ),
    ]
    target.reads = {s.name: s for s in reads}
    target.writes = {s.name: s for s in writes}
    target.info = {
        "reader_id": reader,
        "writer_id": writer,
        "task_id": task,
        "conversation_1k": long_1k,
        "conversation_10k": long_10k,
        "reader_tasks": reader_tasks,
    }
    for scenario in writes:
        status = probe(port, scenario)
        if status in (404, 405):
            target.missing[scenario.name] = f"{scenario.method} {scenario.path} answers {status}"
        elif status not in (200, 201):
            raise RuntimeError(f"{scenario.name}: the probe answered {status}")
    for name in target.missing:
        del target.writes[name]


def probe(port, scenario):
    """The status a scenario's request gets (404/405 means the endpoint is missing)."""
    client = Client(port, scenario.token or None)
    status, _ = client.request(
        scenario.method,
        scenario.path.replace("{t}", scenario.first_value()),
        scenario.concrete_body(),
    )
    return status


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


def wait_idle(target, timeout=60):
    """Until the server has finished the requests wrk left in flight when it stopped
    (a token request costs a third of a second of CPU): they would bill the next run."""
    deadline = time.monotonic() + timeout
    before = target.cpu_seconds()[0]
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = target.cpu_seconds()[0]
        if now - before < 0.02:
            return
        before = now


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


# -- capture, floor, EXPLAIN ------------------------------------------------------


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


def connect_like_django(url):
    return psycopg.connect(
        url, autocommit=True, cursor_factory=psycopg.ClientCursor, options="-c TimeZone=UTC"
    )


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


def plan_nodes(node):
    yield node
    for child in node.get("Plans", []):
        yield from plan_nodes(child)


def judge(plan, pages):
    """What the issue asks of a hot query's plan, from EXPLAIN's JSON.

    Every table is read through an index (a sequential scan is allowed only of a
    table of a few pages, such as auth_user), and no Sort orders more rows than it
    hands on: sorting exactly the rows returned is fine (a conversation's 1,000
    messages), sorting all of a user's matches to keep 21 of them is not.
    """
    nodes = list(plan_nodes(plan["Plan"]))
    scans = [n for n in nodes if "Relation Name" in n or "Index Name" in n]
    seq = [
        n["Relation Name"]
        for n in nodes
        if n["Node Type"] == "Seq Scan" and pages.get(n["Relation Name"], 0) > SEQ_SCAN_PAGES
    ]
    indexed = any("Index" in n["Node Type"] for n in scans) or not seq
    sorts = []
    for node in nodes:
        if node["Node Type"] == "Sort":
            sorted_rows = sum(child["Actual Rows"] for child in node.get("Plans", []))
            if sorted_rows > node["Actual Rows"] + 1:
                sorts.append(f"{sorted_rows} rows sorted for {node['Actual Rows']}")
    return {
        "index_scan": indexed,
        "seq_scan": seq,
        "sort": sorts,
        "ok": indexed and not seq and not sorts,
    }


def explain(url, captured, names):
    """EXPLAIN (ANALYZE, BUFFERS) of every distinct read query; returns (text, checks)."""
    seen = {}
    with connect_like_django(url) as conn:
        cur = conn.cursor()
        pages = dict(
            cur.execute("SELECT relname, relpages FROM pg_class WHERE relkind = 'r'").fetchall()
        )
        for name in names:
            for sql, params in captured[name]["queries"]:
                literal = cur.mogrify(sql, params)
                if literal in seen:
                    seen[literal]["scenarios"].append(name)
                    continue
                cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + literal)
                text = "\n".join(row[0] for row in cur.fetchall())
                cur.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + literal)
                verdict = judge(cur.fetchone()[0][0], pages)
                seen[literal] = {"scenarios": [name], "plan": text, **verdict}
    parts, checks = [], []
    for literal, entry in seen.items():
        checks.append(
            {key: value for key, value in entry.items() if key != "plan"} | {"sql": literal}
        )
        seq = "YES: " + ", ".join(entry["seq_scan"]) if entry["seq_scan"] else "no"
        sort = "YES: " + ", ".join(entry["sort"]) if entry["sort"] else "no"
        verdict = (
            f"index scans {'yes' if entry['index_scan'] else 'NO'}; "
            f"sequential scan of a large table {seq}; sort of more rows than returned {sort}"
        )
        parts.append(
            f"-- {' | '.join(entry['scenarios'])}\n-- {'OK' if entry['ok'] else 'CHECK'}: "
            f"{verdict}\n{literal};\n\n{entry['plan']}\n"
        )
    return "\n\n".join(parts), checks


# -- whole walks --------------------------------------------------------------------


def walk_times(port, token, path, walks):
    """Wall time of fetching every page of a list, following `next`, `walks` times."""
    client = Client(port, token)
    client.get(path)
    times, pages, rows = [], 0, 0
    for _ in range(walks):
        started = time.perf_counter()
        current, pages, rows = path, 0, 0
        while current:
            page = client.get(current)
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


# -- the report ---------------------------------------------------------------------


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
        "statements = what PostgreSQL ran per request (pg_stat_statements: with any "
        "connection health check and BEGIN/COMMIT); CPU = gunicorn + PostgreSQL CPU "
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


# -- main ---------------------------------------------------------------------------


def table_rows(url):
    with psycopg.connect(url, autocommit=True) as conn:
        return sum(
            conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("auth_user", "tasks_task", "chat_conversation", "chat_message")
        )


def run_loader(env, users, jobs):
    subprocess.run(
        [sys.executable, "-m", "bench.load", "--users", str(users), "--jobs", str(jobs)],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=sys.stderr,
    )


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


def server_description(overrides):
    env = {**os.environ, **overrides}
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = env.get("WEB_CONCURRENCY") or f"{min(2 * cpus, 8)} (default)"
    threads = env.get("GUNICORN_THREADS") or "4 (default)"
    text = f"gunicorn.conf.py: workers {workers}, threads {threads}"
    return text + (f"; overrides {overrides}" if overrides else "")


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
