"""ChatKit reads against their REST equivalents (issue 14's benchmark row).

    .venv/bin/python -m bench.chatkit [--rounds 400]

Starts a throwaway PostgreSQL (testing.pgserver), migrates it, loads one user with
`bench.load` (bench0000: 10,000 tasks, 1,002 conversations, one of 1,000 messages and
one of 10,000, tool calls and results included), then sends each pair of requests
through the project's WSGI application in-process (every middleware, authentication
and the throttle included; no HTTP server, which would add the same cost to both):

- `threads.list` (20 threads) against `GET conversations/` (a page of 20);
- `items.list` (50 items of the 1,000-message conversation, newest first) against
  `GET conversations/{id}/messages/?ordering=-seq&page_size=50`;
- `threads.get_by_id` of that conversation (its metadata and items, as the
  SDK answers it: the first 20) against `GET conversations/{id}/`, for information.

The requests are interleaved (REST, ChatKit, REST, ChatKit, ..., the order of each
pair alternating), so that a slow spell of this shared 2-core machine falls on both
sides alike. Each ChatKit answer is validated once with the SDK's own types. Prints
p50 wall and CPU time per request and the ratio; the target is p50 ChatKit / REST
<= 1.2 for `threads.list` and `items.list`.
"""

import argparse
import json
import os
import statistics
import sys
import time

from .profile import environ_for

TARGET = 1.2


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=400)
    parser.add_argument(
        "--users", type=int, default=1, help="users loaded (the reader is the first)"
    )
    parser.add_argument(
        "--explain", action="store_true", help="print the plans of each pair's statements"
    )
    args = parser.parse_args(argv)

    from testing.pgserver import TempPostgres

    with TempPostgres.temporary() as server:
        os.environ.update(
            DATABASE_URL=server.url,
            DEBUG="0",
            SECURE_SSL_REDIRECT="0",
            ALLOWED_HOSTS="127.0.0.1",
            THROTTLE_RATE_USER="100000/s",
            SECRET_KEY="bench-only-secret-key-not-for-production-0123456789",
        )
        sys.path.insert(0, os.getcwd())
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from bench import load

        load.load(server.url, users=args.users, jobs=min(2, args.users), out=sys.stderr)
        run(args.rounds, explain=args.explain)


def explain_statements(function):
    """EXPLAIN (ANALYZE, BUFFERS) of every statement `function()` sends."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        function()
    for query in captured.captured_queries:
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + query["sql"])
            plan = "\n".join(row[0] for row in cursor.fetchall())
        print(f"--- {query['sql'][:300]}\n{plan}\n")


def run(rounds, explain=False):
    import logging

    from chatkit.types import Page, Thread, ThreadItem, ThreadMetadata
    from django.contrib.auth import get_user_model
    from pydantic import TypeAdapter
    from rest_framework_simplejwt.tokens import AccessToken

    from chat.models import Conversation
    from chatproject.wsgi import application

    logging.getLogger("chatproject.requests").setLevel(logging.WARNING)
    user = get_user_model().objects.get(username="bench0000")
    token = str(AccessToken.for_user(user))
    long_1k = Conversation.objects.filter(owner=user, message_count=1000).order_by("id").first().pk

    def call(method, path, body=None):
        raw = json.dumps(body).encode() if body is not None else b""
        status = []
        response = application(
            environ_for(path, token, method, raw), lambda s, h, e=None: status.append(s)
        )
        content = b"".join(response)
        response.close()
        if not status[0].startswith("200"):
            raise RuntimeError(f"{method} {path} {body}: {status[0]} {content[:300]!r}")
        return content

    def chatkit(body):
        return lambda: call("POST", "/api/v1/chatkit/", body)

    def rest(path):
        return lambda: call("GET", path)

    pairs = [
        (
            "threads.list (20)",
            "GET conversations/ (20)",
            rest("/api/v1/conversations/"),
            chatkit({"type": "threads.list", "params": {"limit": 20, "order": "desc"}}),
            TypeAdapter(Page[ThreadMetadata]),
            True,
        ),
        (
            "items.list (50 of 1,000, newest first)",
            "GET conversations/{id}/messages/?ordering=-seq&page_size=50",
            rest(f"/api/v1/conversations/{long_1k}/messages/?ordering=-seq&page_size=50"),
            chatkit(
                {
                    "type": "items.list",
                    "params": {"thread_id": str(long_1k), "limit": 50, "order": "desc"},
                }
            ),
            TypeAdapter(Page[ThreadItem]),
            True,
        ),
        (
            "threads.get_by_id (with its first 20 items)",
            "GET conversations/{id}/",
            rest(f"/api/v1/conversations/{long_1k}/"),
            chatkit({"type": "threads.get_by_id", "params": {"thread_id": str(long_1k)}}),
            TypeAdapter(Thread),
            False,
        ),
    ]
    for name, rest_name, rest_call, chatkit_call, adapter, _ in pairs:
        adapter.validate_json(chatkit_call())  # the SDK's own types accept the answer
        if explain:
            print(f"=== {rest_name}")
            explain_statements(rest_call)
            print(f"=== {name}")
            explain_statements(chatkit_call)
        for _ in range(50):  # warm-up
            rest_call()
            chatkit_call()

    samples = {index: ([], [], [], []) for index in range(len(pairs))}
    for round_number in range(rounds):
        for index, (_, _, rest_call, chatkit_call, _, _) in enumerate(pairs):
            order = (0, 1) if round_number % 2 == 0 else (1, 0)
            for side in order:
                function = (rest_call, chatkit_call)[side]
                wall, cpu = time.perf_counter(), time.process_time()
                function()
                samples[index][side].append((time.perf_counter() - wall) * 1000)
                samples[index][2 + side].append((time.process_time() - cpu) * 1000)

    print(
        f"\nChatKit reads against REST, in-process through the WSGI handler, PostgreSQL, "
        f"p50 of {rounds} interleaved rounds\n"
    )
    print(
        "| ChatKit request | REST equivalent | REST p50 ms | ChatKit p50 ms | ratio "
        "| CPU ms REST / ChatKit | target | holds |"
    )
    print("|---|---|---:|---:|---:|---:|---|---|")
    for index, (name, rest_name, _, _, _, targeted) in enumerate(pairs):
        rest_wall, chatkit_wall, rest_cpu, chatkit_cpu = (
            statistics.median(values) for values in samples[index]
        )
        ratio = chatkit_wall / rest_wall
        target = f"<= {TARGET}x" if targeted else "-"
        holds = ("yes" if ratio <= TARGET else "**no**") if targeted else "-"
        print(
            f"| {name} | {rest_name} | {rest_wall:.2f} | {chatkit_wall:.2f} | {ratio:.2f}x "
            f"| {rest_cpu:.2f} / {chatkit_cpu:.2f} | {target} | {holds} |"
        )


if __name__ == "__main__":
    main()
