"""Concurrent writers over real HTTP, faults injected during the load, and the audit.

`run_scenario()` starts a PostgreSQL of its own and the Procfile's gunicorn on it,
then K writer threads, each with a token of one of a few users, for a bounded time:

- append messages to their user's shared conversation (several writers at once)
  and to a conversation of their own, each with a fresh `client_id`;
- create tasks (a unique token in the title) and complete tasks they created.

A write is retried after a 503, a timeout or a dropped connection: a message with
the same `client_id` (the server stores it once), a task creation only after a
search for its token found nothing (POST tasks/ has no idempotency key). A write
is *acknowledged* when the server answered 200/201 for it.

Meanwhile a fault thread restarts PostgreSQL (fast or immediate shutdown) and
`kill -9`s a gunicorn worker at the given times. Afterwards `audit()` reads the
database directly: every acknowledged write stored exactly once and as
acknowledged, `message_count` equal to the real count, seq 1..n without gaps,
each writer's acknowledged seqs increasing, created_at following seq, and the
API's own listing equal to the table. Any 5xx but a JSON 503 is a violation.
"""

import os
import random
import signal
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from testing.servers import GunicornServer, production_env, run_release

from . import pg
from .http import Client, TransportError

API = "/api/v1"
PASSWORD = "reliability-Passw0rd-2026"
FAULT_KINDS = ("pg-fast", "pg-immediate", "kill-worker")


@dataclass(order=True)
class Fault:
    at: float
    kind: str
    started: float = field(default=0.0, compare=False)
    ended: float = field(default=0.0, compare=False)
    detail: str = field(default="", compare=False)
    recovered_after: float | None = field(default=None, compare=False)


def parse_faults(spec):
    """`"pg-fast@4,kill-worker@8"` → [Fault(4, "pg-fast"), Fault(8, "kill-worker")]."""
    faults = []
    for item in filter(None, (part.strip() for part in (spec or "").split(","))):
        kind, _, at = item.partition("@")
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULT_KINDS)}")
        faults.append(Fault(float(at), kind))
    return sorted(faults)


def cycling_faults(seconds, every):
    """A fault every `every` seconds, the kinds in turn."""
    count = int((seconds - 1) // every)
    return [Fault(every * (n + 1), FAULT_KINDS[n % len(FAULT_KINDS)]) for n in range(count)]


class Ledger:
    """What was sent and what the server acknowledged; shared by all writers."""

    def __init__(self):
        self.lock = threading.Lock()
        self.stats = Counter()
        self.statuses = Counter()
        self.samples = []  # (status, method, path, body) of unexpected answers
        self.events = []  # (monotonic time, status or "transport")
        self.attempted_messages = {}  # client_id → (conversation id, content)
        self.messages = {}  # client_id → acknowledged message (the server's body)
        self.ack_order = defaultdict(list)  # (writer, conversation) → acknowledged seqs
        self.attempted_tasks = set()  # title tokens
        self.tasks = {}  # token → acknowledged task id
        self.completed = set()  # task ids acknowledged as completed
        self.ack_times = []  # monotonic times of acknowledgements

    def count(self, key, amount=1):
        with self.lock:
            self.stats[key] += amount

    def note(self, reply_or_none, method, path):
        now = time.monotonic()
        with self.lock:
            self.stats["requests"] += 1
            if reply_or_none is None:
                self.stats["transport_errors"] += 1
                self.events.append((now, "transport"))
                return
            status = reply_or_none.status
            self.statuses[status] += 1
            self.events.append((now, status))
            if status == 503:
                body = reply_or_none.data
                if not (reply_or_none.is_json and isinstance(body, dict) and body.get("detail")):
                    self.stats["503_not_json"] += 1
                    self._sample(reply_or_none, method, path)
            elif status >= 500:
                self.stats["5xx_not_503"] += 1
                self._sample(reply_or_none, method, path)
            elif reply_or_none.body and not reply_or_none.is_json:
                self.stats["not_json"] += 1
                self._sample(reply_or_none, method, path)

    def _sample(self, reply, method, path):
        if len(self.samples) < 50:
            self.samples.append((reply.status, method, path, reply.body[:300]))

    def unexpected(self, reply, method, path):
        with self.lock:
            self.stats["unexpected_answers"] += 1
            self._sample(reply, method, path)

    def ack_message(self, writer, client_id, message):
        with self.lock:
            self.messages[client_id] = message
            self.ack_order[(writer, message["conversation"])].append(message["seq"])
            self.ack_times.append(time.monotonic())

    def ack_task(self, token, task_id):
        with self.lock:
            self.tasks[token] = task_id
            self.ack_times.append(time.monotonic())

    def ack_completed(self, task_id):
        with self.lock:
            self.completed.add(task_id)
            self.ack_times.append(time.monotonic())


class Writer(threading.Thread):
    """One client: a token, a shared and an own conversation, its own tasks."""

    def __init__(self, index, base_url, token, shared, own, ledger, seed):
        super().__init__(name=f"writer-{index}", daemon=True)
        self.index = index
        self.client = Client(base_url, token=token, timeout=15)
        self.shared, self.own = shared, own
        self.ledger = ledger
        self.stop_at = self.give_up_at = 0.0  # set when the load starts
        self.random = random.Random(seed)
        self.my_tasks = []
        self.serial = 0
        self.error = None

    def run(self):
        try:
            while time.monotonic() < self.stop_at:
                self.serial += 1
                roll = self.random.random()
                if roll < 0.45:
                    self.append(self.shared)
                elif roll < 0.75:
                    self.append(self.own)
                elif roll < 0.9 or not self.my_tasks:
                    self.create_task()
                else:
                    self.complete_task()
        except Exception as exc:  # a bug in the driver must fail the run, not vanish
            self.error = exc
        finally:
            self.client.close()

    def send(self, method, path, data=None):
        try:
            reply = self.client.request(method, path, data)
        except TransportError:
            reply = None
        self.ledger.note(reply, method, path)
        return reply

    def backoff(self, attempt):
        self.ledger.count("retries")
        time.sleep(min(0.05 * 2**attempt, 1.0) * (0.5 + self.random.random()))

    def append(self, conversation):
        client_id = str(uuid.uuid4())
        content = f"writer {self.index} write {self.serial} {client_id[:8]}"
        body = {"role": "user", "content": content, "client_id": client_id}
        path = f"{API}/conversations/{conversation}/messages/"
        with self.ledger.lock:
            self.ledger.attempted_messages[client_id] = (conversation, content)
        attempt = 0
        while time.monotonic() < self.give_up_at:
            reply = self.send("POST", path, body)
            if reply is None or reply.status == 503:
                attempt += 1
                self.backoff(attempt)
                continue
            if reply.status in (200, 201) and isinstance(reply.data, dict):
                message = reply.data
                if (
                    message.get("client_id") != client_id
                    or message.get("content") != content
                    or message.get("conversation") != conversation
                    or not isinstance(message.get("seq"), int)
                ):
                    self.ledger.unexpected(reply, "POST", path)
                    return
                if reply.status == 200:
                    self.ledger.count("replayed_by_client_id")
                self.ledger.ack_message(self.index, client_id, message)
                return
            self.ledger.unexpected(reply, "POST", path)
            return
        self.ledger.count("writes_never_acknowledged")

    def create_task(self):
        token = f"r{self.index}x{self.serial}x{uuid.uuid4().hex[:10]}"
        title = f"task {token}"
        with self.ledger.lock:
            self.ledger.attempted_tasks.add(token)
        ambiguous, attempt = False, 0
        while time.monotonic() < self.give_up_at:
            if ambiguous:
                found = self.send("GET", f"{API}/tasks/?search={token}")
                if found is None or found.status == 503:
                    attempt += 1
                    self.backoff(attempt)
                    continue
                matches = [t for t in found.data.get("results", []) if t.get("title") == title]
                if matches:
                    self.ledger.count("tasks_recovered_by_search")
                    self.ledger.ack_task(token, matches[0]["id"])
                    self.my_tasks.append(matches[0]["id"])
                    return
            reply = self.send("POST", f"{API}/tasks/", {"title": title})
            if reply is None or reply.status == 503:
                # It may have been stored before the failure: look before sending again.
                ambiguous = True
                attempt += 1
                self.backoff(attempt)
                continue
            created = reply.status == 201 and isinstance(reply.data, dict)
            if created and reply.data.get("title") == title:
                self.ledger.ack_task(token, reply.data["id"])
                self.my_tasks.append(reply.data["id"])
                return
            self.ledger.unexpected(reply, "POST", f"{API}/tasks/")
            return
        self.ledger.count("writes_never_acknowledged")

    def complete_task(self):
        task_id = self.my_tasks.pop(self.random.randrange(len(self.my_tasks)))
        path = f"{API}/tasks/{task_id}/"
        attempt = 0
        while time.monotonic() < self.give_up_at:
            reply = self.send("PATCH", path, {"completed": True})
            if reply is None or reply.status == 503:
                attempt += 1
                self.backoff(attempt)
                continue
            if reply.status == 200 and reply.data.get("completed") is True:
                self.ledger.ack_completed(task_id)
                return
            self.ledger.unexpected(reply, "PATCH", path)
            return
        self.ledger.count("writes_never_acknowledged")


class FaultInjector(threading.Thread):
    def __init__(self, faults, postgres, gunicorn, started_at, log):
        super().__init__(name="faults", daemon=True)
        self.faults, self.postgres, self.gunicorn = faults, postgres, gunicorn
        self.started_at = started_at
        self.log = log
        self.error = None

    def run(self):
        try:
            for fault in self.faults:
                delay = self.started_at + fault.at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                fault.started = time.monotonic()
                if fault.kind in ("pg-fast", "pg-immediate"):
                    mode = fault.kind.split("-", 1)[1]
                    stopped, started = pg.restart(self.postgres, mode)
                    fault.detail = f"down {started - stopped:.1f} s"
                else:
                    fault.detail = self.kill_worker()
                fault.ended = time.monotonic()
                self.log(f"  fault {fault.kind} at {fault.at:.0f} s: {fault.detail}")
        except Exception as exc:
            self.error = exc

    def kill_worker(self):
        before = self.gunicorn.worker_pids()
        victim = before[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = self.gunicorn.worker_pids()
            if victim not in now and len(now) >= len(before):
                return f"killed worker {victim}, replaced by {sorted(set(now) - set(before))}"
            time.sleep(0.1)
        return f"killed worker {victim}; no replacement within 30 s"


@dataclass
class Result:
    figures: dict
    violations: list
    faults: list
    samples: list

    @property
    def ok(self):
        return not self.violations


def make_user(base_url, name):
    client = Client(base_url, timeout=30)
    answer = client.post(f"{API}/auth/register/", {"username": name, "password": PASSWORD})
    if answer.status != 201:
        raise RuntimeError(f"register {name}: {answer.status} {answer.body[:300]!r}")
    answer = client.post(f"{API}/auth/token/", {"username": name, "password": PASSWORD})
    if answer.status != 200:
        raise RuntimeError(f"token {name}: {answer.status} {answer.body[:300]!r}")
    client.close()
    return answer.data["access"], answer.data


def make_conversation(base_url, token, title):
    client = Client(base_url, token=token, timeout=30)
    answer = client.post(f"{API}/conversations/", {"title": title})
    client.close()
    if answer.status != 201:
        raise RuntimeError(f"conversation: {answer.status} {answer.body[:300]!r}")
    return answer.data["id"]


def wait_ready(base_url, timeout=60):
    client = Client(base_url, timeout=5)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if client.get("/readyz").status == 200:
                return True
        except TransportError:
            pass
        time.sleep(0.2)
    return False


def run_scenario(
    *,
    seconds=15,
    clients=6,
    users=2,
    faults=(),
    workdir=None,
    env=None,
    seed=0,
    log=print,
    after=None,
):
    """Run the load with faults against a gunicorn + PostgreSQL of its own; a `Result`.

    `after(base_url, postgres)`, if given, runs once the audit is done, against the
    same servers (the long run fuzzes them then).
    """
    faults = [Fault(f.at, f.kind) for f in faults]
    workdir = Path(workdir or "/tmp")
    with pg.own_postgres() as postgres:
        process_env = production_env(
            postgres.url,
            WEB_CONCURRENCY="2",
            GUNICORN_THREADS="4",
            DB_CONNECT_TIMEOUT="2",
            THROTTLE_RATE_AUTH="1000000/minute",
            THROTTLE_RATE_USER="100000000/minute",
            JWT_ACCESS_MINUTES="240",
            **(env or {}),
        )
        run_release(process_env)
        gunicorn = GunicornServer(process_env, log_path=workdir / "gunicorn.log")
        gunicorn.start()
        try:
            base = gunicorn.url
            ledger = Ledger()
            tokens, shared = [], []
            for number in range(users):
                token, _ = make_user(base, f"writer-user-{number}-{uuid.uuid4().hex[:6]}")
                tokens.append(token)
                shared.append(make_conversation(base, token, f"shared by user {number}"))
            writers = [
                Writer(
                    index,
                    base,
                    tokens[index % users],
                    shared[index % users],
                    make_conversation(base, tokens[index % users], f"own of writer {index}"),
                    ledger,
                    seed=seed * 1000 + index,
                )
                for index in range(clients)
            ]
            started = time.monotonic()
            for writer in writers:
                writer.stop_at = started + seconds
                writer.give_up_at = started + seconds + 60
            injector = FaultInjector(faults, postgres, gunicorn, started, log)
            log(f"load: {clients} writers for {seconds:.0f} s, faults: {fault_list(faults)}")
            injector.start()
            for writer in writers:
                writer.start()
            for writer in writers:
                writer.join(timeout=seconds + 120)
            injector.join(timeout=120)
            elapsed = time.monotonic() - started
            ready = wait_ready(base)
            violations = []
            for thread in [*writers, injector]:
                if thread.is_alive():
                    violations.append(f"{thread.name} did not finish")
                if thread.error is not None:
                    violations.append(f"{thread.name} crashed: {thread.error!r}")
            if not ready:
                violations.append("the service did not become ready again after the faults")
            recovery(faults, ledger, violations)
            figures, found = audit(postgres, base, tokens, ledger, violations)
            figures.update(
                seconds=round(elapsed, 1),
                clients=clients,
                users=users,
                faults_injected=len([f for f in faults if f.ended]),
                **found,
            )
            result = Result(figures, violations, faults, list(ledger.samples))
            if after is not None:
                after(base, postgres)
            return result
        finally:
            gunicorn.stop()


def fault_list(faults):
    return ", ".join(f"{f.kind}@{f.at:g}s" for f in faults) or "none"


def recovery(faults, ledger, violations):
    """How long after each fault the first write was acknowledged again."""
    acks = sorted(ledger.ack_times)
    for fault in faults:
        if not fault.ended:
            violations.append(f"fault {fault.kind}@{fault.at:g}s was not injected")
            continue
        after = next((t for t in acks if t > fault.ended), None)
        if after is None:
            violations.append(f"no write acknowledged after fault {fault.kind}@{fault.at:g}s")
        else:
            fault.recovered_after = round(after - fault.ended, 2)


def audit(postgres, base_url, tokens, ledger, violations):
    """Compare the database (and the API's listing) with what was acknowledged."""
    with pg.connect(postgres) as connection:
        user_ids = [
            row[0]
            for row in connection.execute(
                "SELECT id FROM auth_user WHERE username LIKE %s", ["writer-user-%"]
            )
        ]
        messages = connection.execute(
            "SELECT client_id::text, conversation_id, id, seq, content, created_at"
            " FROM chat_message WHERE owner_id = ANY(%s)",
            [user_ids],
        ).fetchall()
        conversations = connection.execute(
            "SELECT id, message_count, updated_at FROM chat_conversation WHERE owner_id = ANY(%s)",
            [user_ids],
        ).fetchall()
        tasks = connection.execute(
            "SELECT id, title, completed FROM tasks_task WHERE owner_id = ANY(%s)", [user_ids]
        ).fetchall()

    by_client = defaultdict(list)
    for client_id, conversation, pk, seq, content, _ in messages:
        by_client[client_id].append((conversation, pk, seq, content))
        if client_id not in ledger.attempted_messages:
            violations.append(f"message {pk} has a client_id nobody sent: {client_id}")
    lost = stored_twice = changed = 0
    for client_id, acked in ledger.messages.items():
        rows = by_client.get(client_id, [])
        if not rows:
            lost += 1
            violations.append(f"acknowledged message lost: {acked}")
        elif len(rows) > 1:
            stored_twice += 1
            violations.append(f"message stored {len(rows)} times: {client_id} {rows}")
        elif rows[0] != (acked["conversation"], acked["id"], acked["seq"], acked["content"]):
            changed += 1
            violations.append(f"message stored differently than acknowledged: {acked} {rows[0]}")
    unacked_stored = sum(
        1
        for client_id in ledger.attempted_messages
        if client_id not in ledger.messages and by_client.get(client_id)
    )

    per_conversation = defaultdict(list)
    for _, conversation, pk, seq, _, created_at in messages:
        per_conversation[conversation].append((seq, created_at, pk))
    for conversation, count, updated_at in conversations:
        rows = sorted(per_conversation.get(conversation, []))
        seqs = [seq for seq, _, _ in rows]
        if seqs != list(range(1, len(rows) + 1)):
            violations.append(f"conversation {conversation}: seq not 1..n: {seqs[:20]}...")
        if count != len(rows):
            violations.append(
                f"conversation {conversation}: message_count {count} but {len(rows)} messages"
            )
        created = [created_at for _, created_at, _ in rows]
        if created != sorted(created):
            violations.append(f"conversation {conversation}: created_at does not follow seq")
        if rows and updated_at < created[-1]:
            violations.append(f"conversation {conversation}: updated_at before its last message")
    for (writer, conversation), seqs in ledger.ack_order.items():
        if seqs != sorted(seqs) or len(set(seqs)) != len(seqs):
            violations.append(
                f"writer {writer} in conversation {conversation}: acknowledged seqs out of order"
            )

    tasks_by_token = defaultdict(list)
    for pk, title, completed in tasks:
        token = title.removeprefix("task ")
        tasks_by_token[token].append((pk, completed))
        if token not in ledger.attempted_tasks:
            violations.append(f"task {pk} nobody created: {title!r}")
    tasks_lost = tasks_twice = 0
    for token, task_id in ledger.tasks.items():
        rows = tasks_by_token.get(token, [])
        if not any(pk == task_id for pk, _ in rows):
            tasks_lost += 1
            violations.append(f"acknowledged task lost: {token} id {task_id}")
    for token, rows in tasks_by_token.items():
        if len(rows) > 1:
            tasks_twice += 1
            violations.append(f"task stored {len(rows)} times: {token} {rows}")
    completed = {pk for pk, _, done in tasks if done}
    not_completed = ledger.completed - completed
    for task_id in not_completed:
        violations.append(f"task {task_id} acknowledged as completed is not completed")

    api_mismatches = check_listing(base_url, tokens, per_conversation, violations)

    stats = ledger.stats
    if stats["5xx_not_503"]:
        violations.append(f"{stats['5xx_not_503']} answers were a 5xx other than 503")
    if stats["503_not_json"]:
        violations.append(f"{stats['503_not_json']} answers were a 503 without a JSON detail")
    if stats["not_json"]:
        violations.append(f"{stats['not_json']} answers had a body that is not JSON")
    if stats["unexpected_answers"]:
        violations.append(f"{stats['unexpected_answers']} unexpected answers (see samples)")

    acked_writes = len(ledger.messages) + len(ledger.tasks) + len(ledger.completed)
    figures = {
        "requests": stats["requests"],
        "statuses": dict(sorted(ledger.statuses.items())),
        "transport_errors": stats["transport_errors"],
        "retries": stats["retries"],
        "answers_503": ledger.statuses.get(503, 0),
        "answers_5xx_not_503": stats["5xx_not_503"],
        "acknowledged_writes": acked_writes,
        "acknowledged_messages": len(ledger.messages),
        "acknowledged_task_creates": len(ledger.tasks),
        "acknowledged_task_completions": len(ledger.completed),
        "replayed_by_client_id": stats["replayed_by_client_id"],
        "tasks_recovered_by_search": stats["tasks_recovered_by_search"],
        "writes_never_acknowledged": stats["writes_never_acknowledged"],
        "unacknowledged_but_stored_messages": unacked_stored,
        "conversations": len(conversations),
        "messages_in_database": len(messages),
        "tasks_in_database": len(tasks),
        "api_listing_mismatches": api_mismatches,
    }
    found = {
        "acknowledged_writes_found": acked_writes
        - lost
        - changed
        - tasks_lost
        - len(not_completed),
        "lost": lost + tasks_lost + len(not_completed),
        "stored_twice": stored_twice + tasks_twice,
        "changed": changed,
    }
    return figures, found


def check_listing(base_url, tokens, per_conversation, violations):
    """The API lists each conversation's messages exactly as stored, page by page."""
    mismatches = 0
    clients = [Client(base_url, token=token, timeout=30) for token in tokens]
    try:
        for conversation, rows in per_conversation.items():
            expected = [pk for _, _, pk in sorted(rows)]
            listed = None
            for client in clients:
                listed = list_all(client, f"{API}/conversations/{conversation}/messages/")
                if listed is not None:
                    break
            if listed != expected:
                mismatches += 1
                violations.append(f"conversation {conversation}: API listing differs from table")
            middle = len(expected) // 2
            for client in clients:
                tail = list_all(
                    client, f"{API}/conversations/{conversation}/messages/?after_seq={middle}"
                )
                if tail is not None:
                    if tail != expected[middle:]:
                        mismatches += 1
                        violations.append(
                            f"conversation {conversation}: after_seq={middle} misses messages"
                        )
                    break
    finally:
        for client in clients:
            client.close()
    return mismatches


def list_all(client, path):
    """Every id of a paginated list, following `next` links; None if not this user's."""
    ids, url = [], path + ("&" if "?" in path else "?") + "page_size=100"
    while url:
        reply = client.get(url)
        if reply.status == 404:
            return None
        if reply.status != 200:
            raise RuntimeError(f"listing {url}: {reply.status} {reply.body[:200]!r}")
        ids.extend(item["id"] for item in reply.data["results"])
        next_url = reply.data["next"]
        url = next_url[next_url.index("/api/") :] if next_url else None
    return ids
