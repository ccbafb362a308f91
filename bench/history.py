"""History benchmark: message and conversation search, export, import (PostgreSQL).

    python -m bench.history [--users 200] [--messages 1000000] [--mine 100000]

Starts a throwaway PostgreSQL (testing.pgserver), migrates it, loads `--messages`
messages in all with SQL (`--mine` of them the reader's, in conversations of 100),
text of 8..37 words, each a 5-letter hex word (about a million distinct) or, 3% of
the time, one of five common words, then measures
in-process through Django's handler (so the numbers are the server's work, not a
load tool's):

- message search and conversation search: p50/p95 over a mix of words (a rare
  word, a common word, a prefix, two words), and the EXPLAIN (ANALYZE) plan of each;
- the same searches with the other index layout (GIN on the vector alone and the
  owner's btree) for comparison;
- export of the reader's account: messages per second and peak memory growth
  (tracemalloc: Python allocations while streaming);
- import of that export into a fresh account: messages per second.

Prints a table; nothing is kept.
"""

import argparse
import os
import statistics
import sys
import time
import tracemalloc

WORDS = ["milk", "meeting", "project", "mother", "invoice"]  # common words


def load(connection, *, users, messages, mine):
    """Users 1..users; the reader is user 1. Conversations of 100 messages."""
    per_conversation = 100
    others = messages - mine
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX IF EXISTS message_owner_search")
        cursor.execute(
            """
            INSERT INTO auth_user (password, is_superuser, username, first_name, last_name,
                                   email, is_staff, is_active, date_joined)
            SELECT '', false, 'bench' || g, '', '', '', false, true, now()
            FROM generate_series(1, %s) g
            """,
            [users],
        )
        cursor.execute("SELECT min(id) FROM auth_user")
        first_user = cursor.fetchone()[0]
        # Conversations: the reader's first, then the others' spread over the users.
        cursor.execute(
            """
            INSERT INTO chat_conversation (owner_id, title, created_at, updated_at,
                                           message_count, archived, pinned)
            SELECT CASE WHEN g <= %(mine_c)s THEN %(first)s
                        ELSE %(first)s + 1 + (g %% (%(users)s - 1)) END,
                   'conversation ' || g || ' about '
                       || (ARRAY['milk','travel','work','books'])[1 + g %% 4],
                   now() - interval '1 day' * (g %% 300), now() - interval '1 minute' * g,
                   %(per)s, false, false
            FROM generate_series(1, %(total_c)s) g
            """,
            {
                "mine_c": mine // per_conversation,
                "first": first_user,
                "users": users,
                "per": per_conversation,
                "total_c": (mine + others) // per_conversation,
            },
        )
        cursor.execute(
            """
            INSERT INTO chat_message (conversation_id, owner_id, seq, role, content,
                                      tool_calls, client_id, created_at)
            SELECT c.id, c.owner_id, s,
                   CASE WHEN s % 2 = 1 THEN 'user' ELSE 'assistant' END,
                   (SELECT string_agg(
                        CASE WHEN random() < 0.03
                             THEN (ARRAY['milk','meeting','project','mother','invoice'])
                                  [1 + (random() * 4)::int]
                             ELSE substr(md5((s * 7919 + c.id * 104729 + w)::text), 1, 5) END, ' ')
                    FROM generate_series(1, 8 + (s * c.id) % 30) w WHERE s > 0),
                   NULL, NULL, c.updated_at - interval '1 second' * (100 - s)
            FROM chat_conversation c, generate_series(1, 100) s
            """
        )
        cursor.execute(
            "CREATE INDEX message_owner_search ON chat_message USING gin (owner_id, search_vector)"
        )
        cursor.execute("ANALYZE")
        cursor.execute("SELECT count(*) FROM chat_message WHERE owner_id = %s", [first_user])
        return first_user, cursor.fetchone()[0]


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def time_requests(client, urls, rounds):
    samples = []
    for _ in range(rounds):
        for url in urls:
            started = time.perf_counter()
            response = client.get(url)
            samples.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.content[:200]
    return statistics.median(samples), percentile(samples, 95)


def explain(connection, sql, params):
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--mine", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args(argv)

    from testing.pgserver import TempPostgres

    with TempPostgres.temporary() as server:
        os.environ.update(
            DATABASE_URL=server.url,
            DEBUG="0",
            SECURE_SSL_REDIRECT="0",
            SECRET_KEY="bench-only-secret-key-not-for-production-0123456789",
        )
        os.environ.setdefault("THROTTLE_RATE_USER", "1000000/second")
        import django

        sys.path.insert(0, os.getcwd())
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
        django.setup()
        from django.conf import settings
        from django.core.management import call_command
        from django.db import connection
        from django.test.utils import CaptureQueriesContext
        from rest_framework.test import APIClient
        from rest_framework_simplejwt.tokens import AccessToken

        from accounts.portability import account_import, export_lines
        from chat import selectors

        settings.ALLOWED_HOSTS = ["testserver"]
        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        reader, mine = load(connection, users=args.users, messages=args.messages, mine=args.mine)
        print(
            f"loaded {args.messages:,} messages ({mine:,} the reader's) in "
            f"{time.perf_counter() - started:.0f} s"
        )

        from django.contrib.auth import get_user_model

        user = get_user_model().objects.get(pk=reader)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(user)}")
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT content FROM chat_message WHERE owner_id = %s ORDER BY id LIMIT 1",
                [reader],
            )
            rare = cursor.fetchone()[0].split()[2]
        searches = [rare, "milk", "meet", "project mother", rare[:3]]
        rows = []

        def measure(label):
            for kind, base in (
                ("messages", "/api/v1/messages/"),
                ("conversations", "/api/v1/conversations/"),
            ):
                urls = [f"{base}?search={word.replace(' ', '%20')}" for word in searches]
                client.get(urls[0])
                p50, p95 = time_requests(client, urls, args.rounds)
                rows.append((f"{kind} search ({label})", f"p50 {p50:.1f} ms, p95 {p95:.1f} ms"))
            for word in searches:
                queryset = selectors.message_search_rows(reader, search=word).order_by(
                    "-created_at", "-id"
                )[:21]
                sql, params = queryset.query.sql_with_params()
                print(f"--- {label}: messages/?search={word}\n{explain(connection, sql, params)}\n")

        measure("GIN (owner_id, search_vector)")
        with connection.cursor() as cursor:
            cursor.execute("DROP INDEX message_owner_search")
            cursor.execute("CREATE INDEX bench_vector ON chat_message USING gin (search_vector)")
            cursor.execute("ANALYZE chat_message")
        measure("GIN (search_vector) + btree owner")
        with connection.cursor() as cursor:
            cursor.execute("DROP INDEX bench_vector")
            cursor.execute(
                "CREATE INDEX message_owner_search ON chat_message "
                "USING gin (owner_id, search_vector)"
            )

        tracemalloc.start()
        started = time.perf_counter()
        with CaptureQueriesContext(connection) as queries:
            chunks = []
            size = 0
            for line in export_lines(user=user):
                size += len(line)
                chunks.append(line)
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        body = b"".join(chunks)
        del chunks
        rows.append(
            (
                "export",
                f"{mine:,} messages in {seconds:.1f} s = {mine / seconds:,.0f} messages/s, "
                f"{size / 1e6:.0f} MB, {len(queries)} queries, Python peak "
                f"{(peak - size) / 1e6:.1f} MB beyond the lines kept by this script",
            )
        )
        fresh = get_user_model().objects.create(username="bench-import")
        started = time.perf_counter()
        counts = account_import(user=fresh, body=body)
        seconds = time.perf_counter() - started
        rows.append(
            (
                "import",
                f"{counts['messages']:,} messages in {seconds:.1f} s = "
                f"{counts['messages'] / seconds:,.0f} messages/s",
            )
        )
        print("| what | result |\n|---|---|")
        for what, result in rows:
            print(f"| {what} | {result} |")


if __name__ == "__main__":
    main()
