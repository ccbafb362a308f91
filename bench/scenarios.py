"""What is measured: each scenario's request, and the ids, tokens and cursors it needs.

The reader bench0000 runs the reads, the writer bench0001 the writes (bench/load.py
makes them with the same rows in both datasets). A write whose endpoint answers
404 or 405 is reported as missing rather than measured.
"""

import json
from datetime import timedelta

import psycopg

from . import API, load
from .client import client, get_json, local_path, token_for, with_query


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
    with client(port, reader_token) as http:
        # The deepest page of 20 in the default ordering: walk pages of 100 to just
        # before the last 20 tasks, and keep that cursor.
        path = f"{API}/tasks/?page_size=100"
        remaining = reader_tasks - 20
        while remaining > 0:
            page = get_json(http, with_query(path, page_size=min(100, remaining)))
            remaining -= len(page["results"])
            path = local_path(page["next"])
        deep = with_query(path, page_size=None)
        last = get_json(http, deep)
        if len(last["results"]) != 20 or last["next"] is not None:
            raise RuntimeError("the deep cursor does not point at the last page")

        # A page in the middle of the 10k walk, for its SQL (the first page has no cursor).
        walk_10k = f"{API}/conversations/{long_10k}/messages/?page_size=1000"
        middle = walk_10k
        for _ in range(5):
            middle = local_path(get_json(http, middle)["next"])

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
    with client(port, scenario.token or None) as http:
        answer = http.request(
            scenario.method,
            scenario.path.replace("{t}", scenario.first_value()),
            json=scenario.concrete_body(),
        )
    return answer.status_code
