"""History benchmark (issue #15): search, export, import and purge at their target scale.

    .venv/bin/python -m bench.history [--messages 5000000] [--mine 100000]
                                      [--exporter 1000000] [--old 1000000] [--rounds 20]
                                      [--text natural|uniform]
                                      [--skip purge] [--skip search] ...

A throwaway PostgreSQL configured as bench/run's (durable commits, 1 GB of shared
buffers), migrated, then loaded with `--messages` messages in conversations of 100:

- the reader's `--mine` (1,000 recent conversations): searched, then exported and
  imported into a fresh account;
- the exporter's `--exporter` (10,000 recent conversations): exported;
- `--old` messages of other users in conversations idle for 400 days: purged;
- the rest spread over 200 other users, recent.

Each message is 8..37 words: five-letter hex words standing for words or, 3% of the
time, one of five common words. `--text natural` (the default) draws them from
200,000 words by Zipf's law, as natural-language text is; `--text uniform` from a
million, equally likely (`vocabulary` says what each favours). Rows are generated
in Python and COPYed by two processes with chat_message's secondary indexes and keys
dropped, which are then rebuilt from their own definitions (the generated tsvector
is computed on the way in, as on an append). Then, each in its own section:

1. search: message and conversation search through Django's handler in-process
   (authentication and throttle included; no HTTP server): a rare word (the least
   frequent of the reader's first message), a common word, a prefix of each and two
   common words, `--rounds` rounds; p50/p95 per kind and the EXPLAIN (ANALYZE,
   BUFFERS) of each query, which must read the index;
2. export: GET export/ of the exporter's account through the handler, the stream
   read and dropped line by line: messages per second and the growth of the
   process's resident memory while it streamed (sampled every 10,000 lines);
3. import: the reader's export POSTed to import/ for a fresh account: messages/s;
4. purge under load: the Procfile's `web:` line serves the reader's REST reads
   (conversations page 1 and the newest 100 messages, alternating wrk runs of 2 s at
   concurrency 4) idle, then while `manage.py purge --days 365` deletes the old
   conversations in another process; p95 during the purge against idle, and the
   purge's longest transaction (its own progress line), which bounds how long any
   row it deletes stays locked.

Prints the results; bench/README.md ("History") keeps them.
"""

import argparse
import itertools
import multiprocessing
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import psycopg

from . import ROOT, log
from .floor import percentile

COMMON_WORDS = ("milk", "meeting", "project", "mother", "invoice")
PER_CONVERSATION = 100
OTHER_USERS = 200
OLD_DAYS = 400
PURGE_DAYS = 365
LOAD_JOBS = 2
NATURAL_WORDS = 200_000
SECTIONS = ("search", "export", "import", "purge")


# --- Loading ------------------------------------------------------------------


def vocabulary(text):
    """(words, cumulative weights) for `rng.choices`: the common words are 3% of the
    whole, the rest five-letter hex words standing for words.

    - "natural": 200,000 words, the r-th most frequent with weight 1/r (Zipf's law,
      which the words of natural-language text follow: a few words are in most
      messages, most words are rare). The default.
    - "uniform": every five-letter hex word (about a million), equally likely: each
      word is rare, which makes a rare word's search easy and is the worst case for
      the GIN index's upkeep (every word of an insert is a different entry).
    """
    if text == "natural":
        hex_words = [f"{n:05x}" for n in range(NATURAL_WORDS)]
        weights = [1 / rank for rank in range(1, NATURAL_WORDS + 1)]
    else:
        hex_words = [f"{n:05x}" for n in range(16**5)]
        weights = [1.0] * len(hex_words)
    common = sum(weights) * 0.03 / 0.97 / len(COMMON_WORDS)
    return hex_words + list(COMMON_WORDS), list(
        itertools.accumulate(weights + [common] * len(COMMON_WORDS))
    )


def load_people_and_conversations(url, *, mine, exporter, old, messages):
    """Users and conversations; returns the reader's and exporter's ids and every
    conversation as (id, owner_id, updated_at), in id order."""
    counts = {
        "reader": mine // PER_CONVERSATION,
        "exporter": exporter // PER_CONVERSATION,
        "old": old // PER_CONVERSATION,
        "rest": (messages - mine - exporter - old) // PER_CONVERSATION,
    }
    with psycopg.connect(url, autocommit=True) as conn:
        ids = [
            conn.execute(
                "INSERT INTO auth_user (password, is_superuser, username, first_name, "
                "last_name, email, is_staff, is_active, date_joined) "
                "VALUES ('', false, %s, '', '', '', false, true, now()) RETURNING id",
                [name],
            ).fetchone()[0]
            for name in ("reader", "exporter")
        ]
        reader, exporter_id = ids
        first_other = conn.execute(
            "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name,"
            " email, is_staff, is_active, date_joined)"
            " SELECT '', false, 'other' || g, '', '', '', false, true, now()"
            " FROM generate_series(1, %s) g RETURNING id",
            [OTHER_USERS],
        ).fetchone()[0]
        groups = [
            ("reader", "%(reader)s", "now() - interval '1 minute' * g"),
            ("exporter", "%(exporter)s", "now() - interval '1 minute' * g"),
            (
                "old",
                "%(first_other)s + g %% %(others)s",
                f"now() - interval '{OLD_DAYS} days' - interval '1 minute' * g",
            ),
            ("rest", "%(first_other)s + g %% %(others)s", "now() - interval '1 second' * g"),
        ]
        for name, owner, updated_at in groups:
            conn.execute(
                "INSERT INTO chat_conversation (owner_id, title, created_at, updated_at,"
                " message_count, archived, pinned)"
                f" SELECT {owner}, 'conversation ' || g || ' about '"
                " || (ARRAY['milk','travel','work','books'])[1 + g %% 4],"
                f" {updated_at} - interval '1 hour', {updated_at}, %(per)s, false, false"
                " FROM generate_series(1, %(count)s) g",
                {
                    "reader": reader,
                    "exporter": exporter_id,
                    "first_other": first_other,
                    "others": OTHER_USERS,
                    "per": PER_CONVERSATION,
                    "count": counts[name],
                },
            )
        conversations = conn.execute(
            "SELECT id, owner_id, updated_at FROM chat_conversation ORDER BY id"
        ).fetchall()
    return reader, exporter_id, conversations


def secondary_keys(conn):
    """chat_message's indexes and keys other than its primary key, as the statements
    that drop them and those that build them again (indexes first)."""
    constraints = conn.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = 'chat_message'::regclass AND contype IN ('u', 'f')"
    ).fetchall()
    indexes = conn.execute(
        "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index i"
        " WHERE indrelid = 'chat_message'::regclass AND NOT indisprimary"
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid"
        " AND c.conrelid = 'chat_message'::regclass)"
    ).fetchall()
    drop = [f'ALTER TABLE chat_message DROP CONSTRAINT "{name}"' for name, _ in constraints]
    drop += [f"DROP INDEX {name}" for name, _ in indexes]
    build = [definition for _, definition in indexes]
    build += [
        f'ALTER TABLE chat_message ADD CONSTRAINT "{name}" {definition}'
        for name, definition in constraints
    ]
    return drop, build


def copy_messages(url, conversations, seed, text):
    """COPY 100 messages into each of `conversations` ((id, owner_id, updated_at))."""
    rng = random.Random(seed)
    words, cum_weights = vocabulary(text)
    columns = "conversation_id, owner_id, seq, role, content, created_at"
    with psycopg.connect(url) as conn, conn.cursor() as cursor:
        with cursor.copy(f"COPY chat_message ({columns}) FROM STDIN") as copy:
            lines = []
            for conversation_id, owner_id, updated_at in conversations:
                prefix = f"{conversation_id}\t{owner_id}\t"
                for seq in range(1, PER_CONVERSATION + 1):
                    role = "user" if seq % 2 else "assistant"
                    content = " ".join(
                        rng.choices(words, cum_weights=cum_weights, k=8 + rng.randrange(30))
                    )
                    created = updated_at - timedelta(seconds=PER_CONVERSATION - seq)
                    lines.append(f"{prefix}{seq}\t{role}\t{content}\t{created.isoformat()}\n")
                if len(lines) >= 20_000:
                    copy.write("".join(lines))
                    lines = []
            copy.write("".join(lines))


def load(url, *, messages, mine, exporter, old, text):
    """Everything the sections read; returns (reader id, exporter id)."""
    started = time.perf_counter()
    reader, exporter_id, conversations = load_people_and_conversations(
        url, mine=mine, exporter=exporter, old=old, messages=messages
    )
    with psycopg.connect(url, autocommit=True) as conn:
        drop, build = secondary_keys(conn)
        for statement in drop:
            conn.execute(statement)
    shares = [conversations[job::LOAD_JOBS] for job in range(LOAD_JOBS)]
    with multiprocessing.get_context("spawn").Pool(LOAD_JOBS) as pool:
        pool.starmap(
            copy_messages, [(url, share, job, text) for job, share in enumerate(shares)]
        )
    log(f"history: {messages:,} messages copied in {time.perf_counter() - started:.0f} s")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '2GB'")
        for statement in build:
            conn.execute(statement)
        conn.execute("VACUUM (ANALYZE) chat_message")
        conn.execute("ANALYZE")
    log(f"history: loaded and indexed in {time.perf_counter() - started:.0f} s")
    return reader, exporter_id


# --- Measuring ----------------------------------------------------------------


def resident_bytes():
    """This process's resident memory now (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def time_requests(client, urls, rounds):
    samples = []
    for _ in range(rounds):
        for url in urls:
            started = time.perf_counter()
            response = client.get(url)
            samples.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.content[:200]
    return statistics.median(samples), percentile(samples, 95)


def explain(sql, params):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def search_section(client, reader, rounds):
    from django.db import connection

    from chat import selectors

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT content FROM chat_message WHERE owner_id = %s ORDER BY id LIMIT 1", [reader]
        )
        # The least frequent word of the reader's first message (any, uniformly).
        rare = max(
            (w for w in cursor.fetchone()[0].split() if w not in COMMON_WORDS),
            key=lambda word: int(word, 16),
        )
    searches = [rare, "milk", "meet", "project mother", rare[:3]]
    rows = []
    plans = []
    for kind, base, query in (
        (
            "messages",
            "/api/v1/messages/",
            lambda word: selectors.message_search_rows(reader, search=word).order_by(
                "-created_at", "-id"
            )[:21],
        ),
        (
            "conversations",
            "/api/v1/conversations/",
            lambda word: selectors.conversation_search_rows(
                reader, search=word, archived=False
            ).order_by("-updated_at", "-id")[:21],
        ),
    ):
        urls = [f"{base}?search={word.replace(' ', '%20')}" for word in searches]
        for url in urls:
            client.get(url)
        p50, p95 = time_requests(client, urls, rounds)
        rows.append((f"{kind} search", f"p50 {p50:.1f} ms, p95 {p95:.1f} ms"))
        for word in searches:
            sql, params = query(word).query.sql_with_params()
            plan = explain(sql, params)
            assert "Seq Scan on chat_message" not in plan, plan  # the EXPLAIN check
            plans.append(f"--- {kind}/?search={word}\n{plan}\n")
            took = re.search(r"Execution Time: ([\d.]+) ms", plan).group(1)
            rows.append((f"{kind} search plan, `{word}`", f"{took} ms in the database"))
    return rows, plans


def export_section(client, user_id, expected):
    before = resident_bytes()
    peak = before
    started = time.perf_counter()
    response = client.get("/api/v1/export/")
    lines = size = 0
    for chunk in response.streaming_content:
        size += len(chunk)
        lines += chunk.count(b"\n")
        if lines % 10_000 == 0:
            peak = max(peak, resident_bytes())
    seconds = time.perf_counter() - started
    peak = max(peak, resident_bytes())
    assert response.status_code == 200 and lines > expected, (response.status_code, lines)
    return [
        (
            f"export of {expected:,} messages",
            f"{seconds:.1f} s = {expected / seconds:,.0f} messages/s, {size / 1e6:.0f} MB of "
            f"NDJSON, resident memory +{(peak - before) / 1e6:.1f} MB while streaming",
        )
    ]


def import_section(client, fresh_client, expected):
    body = b"".join(client.get("/api/v1/export/").streaming_content)
    started = time.perf_counter()
    response = fresh_client.post(
        "/api/v1/import/", data=body, content_type="application/x-ndjson"
    )
    seconds = time.perf_counter() - started
    assert response.status_code == 201, response.content[:300]
    return [
        (
            f"import of {expected:,} messages ({len(body) / 1e6:.0f} MB)",
            f"{seconds:.1f} s = {expected / seconds:,.0f} messages/s",
        )
    ]


def purge_section(env, token, conversation_id, old):
    from testing.servers import GunicornServer

    from .measure import run_wrk
    from .scenarios import Scenario

    api = "/api/v1"
    scenarios = [
        Scenario("conversations, page 1", "GET", f"{api}/conversations/", token),
        Scenario(
            "newest 100 messages",
            "GET",
            f"{api}/conversations/{conversation_id}/messages/?ordering=-seq&page_size=100",
            token,
        ),
    ]
    concurrency, seconds = 4, 2
    with tempfile.TemporaryDirectory(prefix="bench-history-") as workdir:
        server = GunicornServer(env, log_path=Path(workdir) / "gunicorn.log").start()
        try:

            def one_round():
                return [
                    run_wrk(server.port, scenario, concurrency, seconds, workdir)
                    for scenario in scenarios
                ]

            for _ in range(2):
                one_round()
            idle = [run for _ in range(5) for run in one_round()]
            with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
                conn.execute("SELECT pg_stat_statements_reset()")
            purge = subprocess.Popen(
                [sys.executable, "manage.py", "purge", "--days", str(PURGE_DAYS)],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            started = time.perf_counter()
            during = []
            while purge.poll() is None:
                during += one_round()
            purge_seconds = time.perf_counter() - started
            output = purge.stdout.read()
            with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
                calls, mean, slowest = conn.execute(
                    "SELECT calls, mean_exec_time, max_exec_time FROM pg_stat_statements"
                    " WHERE query LIKE %s ORDER BY calls DESC LIMIT 1",
                    ["%WITH locked AS%"],
                ).fetchone()
        finally:
            server.stop()
    if purge.returncode != 0:
        raise RuntimeError(f"purge failed:\n{output}")
    done = output.strip().splitlines()[-1]
    longest = re.search(r"longest transaction (\d+) ms", done).group(1)
    idle_p95 = statistics.median(run["p95"] for run in idle)
    during_p95 = statistics.median(run["p95"] for run in during)
    errors = sum(run["errors"] for run in idle + during)
    return [
        (
            f"purge of {old:,} old messages",
            f"{purge_seconds:.0f} s = {old / purge_seconds:,.0f} messages/s, longest "
            f"transaction {longest} ms as the purge saw it; in the database, {calls:,} "
            f"statements of {mean:.1f} ms on average, the longest {slowest:.1f} ms",
        ),
        (
            "REST reads during the purge",
            f"p95 {during_p95:.2f} ms against {idle_p95:.2f} ms idle "
            f"({during_p95 / idle_p95:.2f}x; worst run {max(r['p95'] for r in during):.2f} ms; "
            f"{len(during)} runs during, {len(idle)} idle; {errors} errors)",
        ),
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5_000_000)
    parser.add_argument("--mine", type=int, default=100_000)
    parser.add_argument("--exporter", type=int, default=1_000_000)
    parser.add_argument("--old", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--text", choices=("natural", "uniform"), default="natural")
    parser.add_argument("--skip", action="append", choices=SECTIONS, default=[])
    args = parser.parse_args(argv)

    from testing.servers import production_env, run_release

    from .database import start_postgres
    from .server import BENCH_ENV

    with tempfile.TemporaryDirectory(prefix="bench-history-") as workdir:
        os.chmod(workdir, 0o755)
        postgres = start_postgres(workdir)
        try:
            env = production_env(postgres.url, **BENCH_ENV)
            run_release(env)
            reader, exporter = load(
                postgres.url,
                messages=args.messages,
                text=args.text,
                mine=args.mine,
                exporter=args.exporter,
                old=args.old,
            )
            rows = measure(args, env, reader, exporter)
        finally:
            postgres.stop()
    print(
        f"\n{args.messages:,} messages: the reader's {args.mine:,}, the exporter's "
        f"{args.exporter:,}, {args.old:,} old; {args.text} text\n"
    )
    print("| what | result |\n|---|---|")
    for what, result in rows:
        print(f"| {what} | {result} |")


def measure(args, env, reader, exporter):
    """The sections, in this process set up as the server is (same settings)."""
    os.environ.update({key: env[key] for key in ("DATABASE_URL", "SECRET_KEY", "DEBUG")})
    os.environ.update(SECURE_SSL_REDIRECT="0", THROTTLE_RATE_USER="1000000/second")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient
    from rest_framework_simplejwt.tokens import AccessToken

    settings.ALLOWED_HOSTS = ["testserver"]
    users = get_user_model().objects

    def client_of(user):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(user)}")
        return client

    reader_client = client_of(users.get(pk=reader))
    rows, plans = [], []
    if "search" not in args.skip:
        found, plans = search_section(reader_client, reader, args.rounds)
        rows += found
    if "export" not in args.skip:
        rows += export_section(client_of(users.get(pk=exporter)), exporter, args.exporter)
    if "import" not in args.skip:
        fresh = client_of(users.create(username="imported"))
        rows += import_section(reader_client, fresh, args.mine)
    if "purge" not in args.skip:
        from chat.models import Conversation

        token = str(AccessToken.for_user(users.get(pk=reader)))
        conversation_id = Conversation.objects.filter(owner_id=reader).values_list(
            "pk", flat=True
        )[0]
        rows += purge_section(env, token, conversation_id, args.old)
    for plan in plans:
        print(plan)
    return rows


if __name__ == "__main__":
    main()
