"""Streamed chat turns under load: the figures docs/deploy.md ("Streams") reports.

    .venv/bin/python -m testing.pgserver run -- .venv/bin/python -m bench.streams

On a fresh database (through the suite's PgBouncer, as on Neon's pooled endpoint)
it starts the Procfile's `web:` (gunicorn threads, WSGI) and `stream:` (gunicorn
with the uvicorn worker, ASGI) lines and a slow fake model in this process (a word
every 50 ms, 200 words: about 10 s a reply), then measures:

1. time to `turn.started` with the `rules` agent, 100 streamed turns one after the
   other, on each process type (p50 / p95);
2. REST page-1 reads (`GET tasks/`, 20 tasks) on `web`, idle (p50, wrk);
3. `--streams` (200) streams open at once on `stream` with the `openai` agent: errors,
   replies complete, REST page-1 p50 on `web` meanwhile (wrk), memory per open stream
   (RSS of the stream workers), rows written per turn (pg_stat_database);
4. the same with 16 streams on `web`, to show what streams do to its threads.

The model and the 200 clients stand in for other machines: they run in processes
of their own at a lower CPU priority (`LOAD_NICENESS`), so that on this one
machine they take the CPU the servers leave, and REST latency is timed by wrk,
not by a Python thread that would wait for the clients' GIL.
"""

import argparse
import json
import multiprocessing
import os
import statistics
import tempfile
import threading
import time
import urllib.request
from collections import Counter

import psycopg

from testing.fake_openai import FakeOpenAI, text_reply
from testing.pgserver import database_url, scratch_database
from testing.servers import GunicornServer, HttpClient, collectstatic, production_env, run_release
from testing.sse import read_events

from .measure import run_wrk
from .scenarios import Scenario

REPLY = " ".join(f"word{i}" for i in range(200))
# The fake model's and the stream clients' processes run this much nicer than ours.
LOAD_NICENESS = 10
# wrk's REST runs: idle, and while the streams are open (they last 10 s or more).
REST_SECONDS = 6


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def ms(seconds):
    return f"{seconds * 1000:.1f} ms"


def open_stream(url, token, body):
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": "text/event-stream",
            "Content-Type": "application/json",
        },
    )
    return urllib.request.urlopen(request, timeout=120)


def one_turn(url, token, message):
    """(seconds to turn.started, events) of one streamed turn read to its end."""
    started = time.perf_counter()
    first = None
    got = []
    with open_stream(url + "/api/v1/chat/", token, {"message": message}) as response:
        for event in read_events(response):
            if first is None:
                first = time.perf_counter() - started
            got.append(event)
    return first, got


def rss_kb(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def rest_p50(port, token, seconds, workdir):
    """REST page 1 (`GET tasks/`) p50 in seconds, timed by wrk at concurrency 1."""
    scenario = Scenario("tasks, page 1", "GET", "/api/v1/tasks/", token)
    result = run_wrk(port, scenario, 1, seconds, workdir)
    assert result["errors"] == 0, result
    return result["p50"] / 1000


def serve_model(connection):
    """A child process: the slow fake model, until the parent says stop."""
    os.nice(LOAD_NICENESS)
    fake = FakeOpenAI(token_delay=0.05, default=text_reply(REPLY))
    connection.send(fake.url)
    connection.recv()
    fake.close()


def run_streams(url, token, count, connection):
    """A child process: `count` streamed turns at once, read to their end; sends
    back what the parent reports of them."""
    os.nice(LOAD_NICENESS)
    results, errors = [None] * count, []

    def run(i):
        try:
            results[i] = one_turn(url, token, f"stream {i}")[1]
        except Exception as exc:  # counted and reported
            errors.append(repr(exc))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    complete = sum(
        1
        for got in results
        if got
        and got[-1].name == "turn.done"
        and "".join(e.data["delta"] for e in got if e.name == "message.delta") == REPLY
    )
    connection.send(
        {
            "errors": len(errors),
            "error_sample": errors[:3],
            "complete": complete,
            "seconds": round(time.monotonic() - started, 1),
            "events_per_turn": round(statistics.mean(len(g) for g in results if g), 1),
            "last_events": dict(Counter(g[-1].name for g in results if g)),
            "failures": sorted(
                {json.dumps(g[-1].data) for g in results if g and g[-1].name != "turn.done"}
            )[:3],
        }
    )


def writes(direct_url, name):
    with psycopg.connect(direct_url) as conn:
        row = conn.execute(
            "SELECT tup_inserted + tup_updated + tup_deleted FROM pg_stat_database "
            "WHERE datname = %s",
            [name],
        ).fetchone()
    return row[0]


def streams_at_once(target, rest_port, token, count, direct_url, name, workdir):
    context = multiprocessing.get_context("spawn")
    before_rss = rss_kb(target.worker_pids())
    time.sleep(1)
    before_writes = writes(direct_url, name)
    receiver, sender = context.Pipe(duplex=False)
    clients = context.Process(target=run_streams, args=(target.url, token, count, sender))
    clients.start()
    time.sleep(3)
    peak_rss = rss_kb(target.worker_pids())
    during = rest_p50(rest_port, token, REST_SECONDS, workdir)
    peak_rss = max(peak_rss, rss_kb(target.worker_pids()))
    if not receiver.poll(300):
        raise RuntimeError("the streams did not end in 300 s")
    report = receiver.recv()
    clients.join()
    time.sleep(1)
    rows = writes(direct_url, name) - before_writes
    return {
        "streams": count,
        **report,
        "rest_p50_during": during,
        "rss_per_stream_kb": round((peak_rss - before_rss) / count, 1),
        "rows_written_per_turn": round(rows / count, 1),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--web-streams", type=int, default=16)
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    model, model_control = context.Pipe()
    model_process = context.Process(target=serve_model, args=(model_control,))
    model_process.start()
    model_url = model.recv()
    workdir = tempfile.mkdtemp(prefix="bench-streams-")
    collectstatic()
    bouncer = os.environ["PGBOUNCER_DATABASE_URL"]
    with scratch_database(os.environ["DATABASE_URL"], prefix="streams") as direct_url:
        name = direct_url.rsplit("/", 1)[1]
        common = {
            "WEB_CONCURRENCY": 2,
            "GUNICORN_THREADS": 4,
            "THROTTLE_RATE_USER": "100000000/minute",
            "THROTTLE_RATE_AUTH": "100000/minute",
            "DISABLE_SERVER_SIDE_CURSORS": 1,
        }
        run_release(production_env(direct_url))
        rules = production_env(database_url(bouncer, name), **common)
        slow = production_env(
            database_url(bouncer, name),
            CHAT_AGENT="openai",
            CHAT_MODEL="fake-model",
            OPENAI_API_KEY="bench",
            OPENAI_BASE_URL=model_url,
            CHAT_AGENT_TIMEOUT=60,
            **common,
        )
        report = {}
        with (
            GunicornServer(rules) as web,
            GunicornServer(rules, process="stream") as stream,
            GunicornServer(slow) as slow_web,
            GunicornServer(slow, process="stream") as slow_stream,
        ):
            client = HttpClient(web.url)
            client.login("bench-streams", "Quiet-Harbor-7731-Lantern")
            for i in range(20):
                client.post("/api/v1/tasks/", {"title": f"task {i}"})
            token = client.token
            for label, server in (("web", web), ("stream", stream)):
                firsts = [one_turn(server.url, token, f"add task {i}")[0] for i in range(100)]
                report[f"turn_started_{label}"] = {"p50": pct(firsts, 50), "p95": pct(firsts, 95)}
            report["rest_idle_p50"] = rest_p50(web.port, token, REST_SECONDS, workdir)
            report["asgi_streams"] = streams_at_once(
                slow_stream, web.port, token, args.streams, direct_url, name, workdir
            )
            report["wsgi_streams"] = streams_at_once(
                slow_web, web.port, token, args.web_streams, direct_url, name, workdir
            )
    model.send("stop")
    model_process.join()
    print(json.dumps(report, indent=2, default=str))
    for label in ("web", "stream"):
        t = report[f"turn_started_{label}"]
        print(f"time to turn.started ({label}, rules): p50 {ms(t['p50'])}, p95 {ms(t['p95'])}")
    print(f"REST page 1 idle p50: {ms(report['rest_idle_p50'])}")
    for label in ("asgi_streams", "wsgi_streams"):
        r = report[label]
        during = r["rest_p50_during"]
        print(
            f"{label}: {r['streams']} streams, {r['errors']} errors, {r['complete']} complete in "
            f"{r['seconds']} s; REST p50 during {ms(during) if during else '-'} "
            f"({during / report['rest_idle_p50']:.2f}x idle); "
            f"{r['rss_per_stream_kb']} KB per stream; {r['rows_written_per_turn']} rows "
            f"written per turn, {r['events_per_turn']} events"
        )


if __name__ == "__main__":
    main()
