"""Dataset loader: users with realistic tasks, conversations and messages, by COPY.

    python -m bench.load --users 10             # users bench0000 .. bench0009
    python -m bench.load --users 90 --first 10  # add bench0010 .. bench0099
    python -m bench.load --users 100 --jobs 2   # two loader processes

Each user gets 10,000 tasks, 1,000 conversations of about 20 messages, one
conversation of 1,000 messages and one of 10,000. Text is cut from a generated
corpus of English words at realistic lengths (task titles 10..90 characters,
descriptions empty or up to 600, user messages up to 600, assistant replies up to
2,500 with line breaks, tool calls and tool results as JSON). Everything is
deterministic for a given user number, ids included (user n's rows have the same
ids in every database, so the datasets of two sizes share the reader's rows
exactly). Rows go in by COPY with those ids (the identity sequences are moved past
them afterwards) and without the per-row foreign
key triggers (session_replication_role = replica: the loader needs a superuser),
then VACUUM ANALYZE, so the planner has statistics and index-only scans have a
visibility map.

Reads DATABASE_URL; the schema must exist (the Procfile's release line). Every
user's password is `bench.load.PASSWORD` (hashed once, with the project's hasher).
"""

import argparse
import multiprocessing
import os
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import psycopg

PASSWORD = "bench-password-0123456789"
TASKS_PER_USER = 10_000
CONVERSATIONS_PER_USER = 1_000
MESSAGES_PER_CONVERSATION = 20
LONG_CONVERSATIONS = (1_000, 10_000)
# A word that appears in about 1 task title or description in 40: the search scenario.
SEARCH_WORD = "invoice"
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
USER_ID_BASE = 1_000
# More than any user's messages: 1,000 conversations of at most 26, plus 11,000.
MESSAGE_IDS_PER_USER = 40_000

WORDS = (
    "the a to and of in for on with at from by about as into like through after over "
    "between out against during without before under around among is was be have do "
    "say get make go know take see come think look want give use find tell ask work "
    "seem feel try leave call need keep let begin show hear play run move live believe "
    "bring happen write provide sit stand lose pay meet include continue set learn change "
    "lead understand watch follow stop create speak read allow add spend grow open walk "
    "win offer remember love consider appear buy wait serve die send expect build stay "
    "fall cut reach kill remain suggest raise pass sell require report decide pull time "
    "year people way day man thing woman life child world school state family student "
    "group country problem hand part place case week company system program question "
    "government number night point home water room mother area money story fact month "
    "lot right study book eye job word business issue side kind head house service "
    "friend father power hour game line end member law car city community name president "
    "team minute idea kid body information back parent face others level office door "
    "health person art war history party result change morning reason research girl guy "
    "moment air teacher force education meeting project report budget draft review "
    "deadline schedule email client server database release feature bug test deploy "
    "today tomorrow monday friday next last good new first long great little own other "
    "old big high different small large important young few public bad same able early "
    "quickly really also just still already maybe please thanks sure okay"
).split()
PRIORITIES = ("low", "normal", "normal", "normal", "high")
TAGS = ("home", "work", "errands", "bills", "family")
REPEATS = ("daily", "weekly", "monthly")
VERBS = (
    "Buy Call Email Finish Review Write Fix Plan Book Pay Send Clean Update Prepare "
    "Schedule Check Cancel Renew Order Read Draft Submit Organize Test Deploy Refactor"
).split()
TOOLS = ("add_task", "list_tasks", "complete_task", "delete_task", "update_task")


def build_corpus(rng, words=400_000):
    parts = []
    for _ in range(words):
        word = rng.choice(WORDS)
        roll = rng.random()
        if roll < 0.06:
            word += "."
        elif roll < 0.10:
            word += ","
        elif roll < 0.105:
            word += ".\n\n"
        parts.append(word)
    text = " ".join(parts)
    return text.replace("\n ", "\n")


class Text:
    """Fast text of a given length: slices of one big corpus at random offsets."""

    def __init__(self, seed=7):
        self.corpus = build_corpus(random.Random(seed))
        self.size = len(self.corpus)

    def cut(self, rng, length, lines=True):
        start = rng.randrange(self.size - length - 64)
        start = self.corpus.find(" ", start) + 1
        text = self.corpus[start : start + length].strip()
        if not lines:
            text = text.replace("\n", " ")
        return (text[:1].upper() + text[1:]) or "ok"


def ids_of(number):
    """The first ids of user `number`'s rows: fixed, so jobs can load users in parallel
    and a user's rows have the same ids in every dataset."""
    return {
        "user": USER_ID_BASE + number,
        "task": number * TASKS_PER_USER + 1,
        "conversation": number * (CONVERSATIONS_PER_USER + len(LONG_CONVERSATIONS)) + 1,
        "message": number * MESSAGE_IDS_PER_USER + 1,
    }


def password_hash():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
    import django

    django.setup()
    from django.contrib.auth.hashers import make_password

    return make_password(PASSWORD)


def task_rows(rng, text, owner_id, first_id):
    start = NOW - timedelta(days=365)
    # One creation time per task, ascending with the id, as a real list grows.
    offsets = sorted(rng.random() * 365 * 86400 for _ in range(TASKS_PER_USER))
    for n, offset in enumerate(offsets):
        created = start + timedelta(seconds=offset)
        updated = min(NOW, created + timedelta(seconds=rng.random() * 30 * 86400))
        title = f"{rng.choice(VERBS)} {text.cut(rng, rng.randint(6, 80), lines=False).lower()}"
        if rng.random() < 0.4:
            description = ""
        else:
            description = text.cut(rng, rng.randint(20, 600))
        if rng.random() < 0.025:
            title = f"{title} {SEARCH_WORD}"
        # Three tasks in five have a due date (within two months of NOW), one in
        # twenty of those repeats; priorities and up to two of five tags at random.
        due_at = None
        if rng.random() < 0.6:
            due_at = NOW + timedelta(seconds=rng.uniform(-30, 30) * 86400)
        repeat = rng.choice(REPEATS) if due_at and rng.random() < 0.05 else None
        yield (
            first_id + n,
            owner_id,
            title[:200].rstrip(),
            description,
            rng.random() < 0.35,
            created,
            updated,
            due_at,
            rng.choice(PRIORITIES),
            orjson.dumps(rng.sample(TAGS, rng.randrange(3))).decode(),
            repeat,
        )


def message_for(rng, text, seq):
    """(role, content, tool_calls) for the seq-th message of a conversation."""
    phase = seq % 10
    if phase == 4:
        name = rng.choice(TOOLS)
        arguments = {"title": text.cut(rng, rng.randint(10, 60), lines=False)}
        calls = [
            {
                "id": f"call_{rng.getrandbits(64):016x}",
                "type": "function",
                "function": {"name": name, "arguments": orjson.dumps(arguments).decode()},
            }
        ]
        return "assistant", "Let me take care of that.", calls
    if phase == 5:
        result = {"id": rng.randint(1, 10**6), "title": text.cut(rng, 40, lines=False)}
        calls = [{"tool_call_id": f"call_{rng.getrandbits(64):016x}", "result": result}]
        return "tool", orjson.dumps(result).decode(), calls
    if seq % 2:
        return "user", text.cut(rng, rng.randint(12, 600)), None
    return "assistant", text.cut(rng, rng.randint(80, 2500)), None


def conversation_plan(rng):
    """Message counts of one user's conversations: ~20 each, then the two long ones."""
    counts = [rng.randint(14, 26) for _ in range(CONVERSATIONS_PER_USER)]
    return counts + list(LONG_CONVERSATIONS)


def load_user(cur, text, number):
    rng = random.Random(number * 1_000_003 + 1)
    ids = ids_of(number)
    user_id = ids["user"]
    with cur.copy(
        "COPY tasks_task (id, owner_id, title, description, completed, created_at, updated_at,"
        " due_at, priority, tags, repeat) FROM STDIN"
    ) as copy:
        for row in task_rows(rng, text, user_id, ids["task"]):
            copy.write_row(row)

    counts = conversation_plan(rng)
    start = NOW - timedelta(days=365)
    conversations = []
    messages = 0
    with cur.copy(
        "COPY chat_message (id, conversation_id, owner_id, seq, role, content, tool_calls,"
        " client_id, created_at) FROM STDIN"
    ) as copy:
        for index, count in enumerate(counts):
            conversation_id = ids["conversation"] + index
            created = start + timedelta(seconds=rng.random() * 300 * 86400)
            if count in LONG_CONVERSATIONS and index >= CONVERSATIONS_PER_USER:
                created = NOW - timedelta(days=60)
            at = created
            for seq in range(1, count + 1):
                at += timedelta(seconds=rng.randint(2, 90) if count < 1000 else 5)
                role, content, calls = message_for(rng, text, seq)
                client_id = None
                if role == "user":
                    client_id = uuid.UUID(int=rng.getrandbits(128), version=4)
                copy.write_row(
                    (
                        ids["message"] + messages,
                        conversation_id,
                        user_id,
                        seq,
                        role,
                        content,
                        orjson.dumps(calls).decode() if calls is not None else None,
                        client_id,
                        at,
                    )
                )
                messages += 1
            title = text.cut(rng, rng.randint(0, 60), lines=False) if rng.random() < 0.8 else ""
            conversations.append(
                (conversation_id, user_id, title, created, at, count, False, False)
            )
    with cur.copy(
        "COPY chat_conversation (id, owner_id, title, created_at, updated_at, message_count,"
        " archived, pinned) FROM STDIN"
    ) as copy:
        for row in conversations:
            copy.write_row(row)
    return {"tasks": TASKS_PER_USER, "conversations": len(counts), "messages": messages}


def load_users(url, numbers, hashed):
    """Load the users numbered `numbers`, one transaction each; returns the counts."""
    text = Text()
    made = {"users": 0, "tasks": 0, "conversations": 0, "messages": 0}
    with psycopg.connect(url, autocommit=False) as conn:
        cur = conn.cursor()
        # The generated rows are consistent by construction: skip the per-row
        # foreign key triggers (the checks and unique indexes still apply).
        cur.execute("SET session_replication_role = replica")
        for number in numbers:
            cur.execute(
                "INSERT INTO auth_user (id, username, password, email, first_name, last_name,"
                " is_staff, is_active, is_superuser, date_joined)"
                " VALUES (%s, %s, %s, %s, '', '', false, true, false, %s)",
                (
                    ids_of(number)["user"],
                    f"bench{number:04d}",
                    hashed,
                    f"bench{number:04d}@example.com",
                    NOW,
                ),
            )
            counts = load_user(cur, text, number)
            made["users"] += 1
            for key, value in counts.items():
                made[key] += value
            conn.commit()
    return made


def _load_job(job):
    return load_users(*job)


def load(url, users, first=0, jobs=2, vacuum=True, out=sys.stdout):
    started = time.perf_counter()
    hashed = password_hash()
    numbers = list(range(first, first + users))
    jobs = max(1, min(jobs, users))
    slices = [(url, numbers[i::jobs], hashed) for i in range(jobs)]
    if jobs == 1:
        results = [load_users(*slices[0])]
    else:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            results = pool.map(_load_job, slices)
    made = {key: sum(result[key] for result in results) for key in results[0]}
    with psycopg.connect(url, autocommit=True) as conn:
        for table in ("auth_user", "tasks_task", "chat_conversation", "chat_message"):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT MAX(id) FROM {table}))"
            )
    copied = time.perf_counter() - started
    if vacuum:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE) tasks_task, chat_conversation, chat_message, auth_user")
    elapsed = time.perf_counter() - started
    print(
        f"loaded {made['users']} users, {made['tasks']:,} tasks, "
        f"{made['conversations']:,} conversations, {made['messages']:,} messages "
        f"in {elapsed:.1f} s ({jobs} jobs; COPY {copied:.1f} s, "
        f"VACUUM ANALYZE {elapsed - copied:.1f} s)",
        file=out,
        flush=True,
    )
    return made, elapsed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1)
    parser.add_argument("--first", type=int, default=0, help="number of the first user")
    parser.add_argument("--jobs", type=int, default=2, help="loader processes")
    parser.add_argument("--no-vacuum", action="store_true")
    args = parser.parse_args(argv)
    url = os.environ["DATABASE_URL"]
    load(url, args.users, args.first, jobs=args.jobs, vacuum=not args.no_vacuum)


if __name__ == "__main__":
    main()
