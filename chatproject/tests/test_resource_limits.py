"""Resource limits: big and deep bodies, page sizes at and past their bounds, a user
with 10,000 tasks, slow clients. Always a 4xx with a JSON body or a normal answer,
in bounded time and memory; never a 500.

The in-process tests run on both databases. The ones marked e2e talk HTTP to the
Procfile's gunicorn (on a database of their own on the suite's PostgreSQL): a
chunked body with no Content-Length, slow clients that hold connections open, and
worker memory after a flood of oversized and deeply nested bodies.
"""

import http.client
import os
import socket
import time
import uuid

import orjson
import pytest
from django.conf import settings

from chat.models import Message
from conftest import client_for
from tasks.models import Task
from testing.factories import ConversationFactory

TASKS = "/api/v1/tasks/"
CONVERSATIONS = "/api/v1/conversations/"


def limit():
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def post_raw(client, path, body, content_type="application/json"):
    return client.generic("POST", path, body, content_type=content_type)


def assert_json_error(response, status):
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json")
    assert isinstance(response.json(), dict) and response.json()


def padded_task(size, title="padded"):
    """A valid task body of exactly `size` bytes (JSON whitespace as padding)."""
    body = orjson.dumps({"title": title})
    return body[:-1] + b" " * (size - len(body)) + b"}"


# --- body size --------------------------------------------------------------------


def test_body_at_the_limit_is_accepted(api_client, user):
    body = padded_task(limit())
    assert len(body) == limit()
    response = post_raw(api_client, TASKS, body)
    assert response.status_code == 201, response.content[:300]


def test_body_one_byte_over_the_limit_is_413(api_client, user):
    body = padded_task(limit() + 1)
    assert_json_error(post_raw(api_client, TASKS, body), 413)
    assert not Task.objects.filter(owner=user).exists()


@pytest.mark.parametrize("size", [1024 * 1024, 8 * 1024 * 1024])
def test_big_body_is_413_on_every_write(api_client, user, size):
    conversation = ConversationFactory(owner=user)
    body = padded_task(size)
    for method, path in [
        ("POST", TASKS),
        ("POST", CONVERSATIONS),
        ("POST", f"{CONVERSATIONS}{conversation.pk}/messages/"),
        ("PATCH", f"{CONVERSATIONS}{conversation.pk}/"),
        ("POST", "/api/v1/chat/"),
        ("POST", "/api/v1/auth/register/"),
        ("POST", "/api/v1/auth/token/"),
    ]:
        response = api_client.generic(method, path, body, content_type="application/json")
        assert_json_error(response, 413)
    assert not Task.objects.filter(owner=user).exists()
    assert not Message.objects.filter(owner=user).exists()


def test_lying_content_length_is_not_trusted(api_client, user):
    """A small declared length with a big body: only the declared bytes are read."""
    body = padded_task(limit() * 2)
    response = api_client.generic(
        "POST", TASKS, body, content_type="application/json", CONTENT_LENGTH="20"
    )
    # Only the declared 20 bytes are read: a JSON text cut short.
    assert response.status_code == 400, response.content[:300]


def test_longest_message_is_stored_and_one_more_character_is_400(api_client, user):
    conversation = ConversationFactory(owner=user)
    path = f"{CONVERSATIONS}{conversation.pk}/messages/"
    ok = api_client.post(path, {"role": "user", "content": "é" * 10_000}, format="json")
    assert ok.status_code == 201
    too_long = api_client.post(path, {"role": "user", "content": "é" * 10_001}, format="json")
    assert_json_error(too_long, 400)


# --- deep and huge JSON ---------------------------------------------------------------


@pytest.mark.parametrize("depth", [1_100, 100_000])
def test_json_nested_too_deep_is_refused(api_client, depth):
    for body in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth):
        started = time.monotonic()
        expected = 400 if len(body) <= limit() else 413
        assert_json_error(post_raw(api_client, TASKS, body.encode()), expected)
        assert time.monotonic() - started < 2


@pytest.mark.parametrize("depth", [10, 63, 64, 254, 500, 1_000])
def test_deep_tool_calls_are_stored_and_read_back_or_refused(api_client, user, depth):
    """Whatever nesting is accepted can be read back: a stored value the renderer
    cannot write (orjson stops at 254 levels) would make its conversation a 500."""
    from core.parsers import MAX_DEPTH

    conversation = ConversationFactory(owner=user)
    path = f"{CONVERSATIONS}{conversation.pk}/messages/"
    body = b'{"role": "assistant", "content": "deep", "tool_calls": %s}' % (
        b"[" * depth + b"]" * depth
    )
    response = post_raw(api_client, path, body)
    if depth + 1 <= MAX_DEPTH:
        assert response.status_code == 201, response.content[:300]
    else:
        assert_json_error(response, 400)
    for query in ({}, {"ordering": "-seq"}):
        listed = api_client.get(path, query)
        assert listed.status_code == 200, listed.content[:300]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param(orjson.dumps(list(range(40_000))), 400, id="array_of_40k_numbers"),
        pytest.param(
            orjson.dumps({"title": "x", **{f"k{i}": i for i in range(15_000)}}),
            201,
            id="object_with_15k_keys",
        ),
        pytest.param(orjson.dumps({"title": "x" * 200_000}), 400, id="one_200k_string"),
        pytest.param(orjson.dumps(["x" * 100] * 2_000), 400, id="array_of_strings"),
        pytest.param(b'{"title": "x", "completed": 1e400}', 400, id="float_overflow"),
        pytest.param(b'{"title": "x", "completed": ' + b"9" * 5_000 + b"}", 400, id="huge_integer"),
        pytest.param(b'{"title": "x", "description": NaN}', 400, id="nan"),
        pytest.param(b'{"title": "\\ud800"}', 400, id="lone_surrogate"),
        pytest.param(b'{"title": "x"' + b', "title": "y"' * 5_000 + b"}", 201, id="duplicate_keys"),
        pytest.param(b"\xef\xbb\xbf" + orjson.dumps({"title": "bom"}), 400, id="utf8_bom"),
        pytest.param(b"\xff\xfe{}", 400, id="not_utf8"),
    ],
)
def test_huge_or_odd_json_is_answered_without_500(
    api_client, user, body, status, assert_max_queries
):
    """Unknown and repeated keys are ignored (201, as DRF does); a value the API
    refuses, a BOM or bytes that are not UTF-8 are a 400 that reaches no table (the
    user, the throttle). How fast is measured in bench/, not here."""
    assert len(body) <= limit()
    with assert_max_queries(3 if status == 201 else 2):
        response = post_raw(api_client, TASKS, body)
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json")


def test_long_query_strings_are_400_or_fine(api_client, user):
    """Any text is a search (found nothing: 200); the other parameters are refused."""
    for query, status in (
        ({"search": "x" * 10_000}, 200),
        ({"search": "%" * 5_000}, 200),
        ({"cursor": "A" * 20_000}, 400),
        ({"ordering": "-created_at" * 500}, 400),
        ({"page_size": "9" * 5_000}, 400),
        ({"completed": "true" * 1_000}, 400),
    ):
        response = api_client.get(TASKS, query)
        assert response.status_code == status, (query.keys(), response.status_code)
        assert response["Content-Type"].startswith("application/json")


# --- page sizes -----------------------------------------------------------------------


@pytest.fixture
def plenty(user):
    Task.objects.bulk_create(Task(owner=user, title=f"task {i}") for i in range(150))
    conversation = ConversationFactory(owner=user)
    Message.objects.bulk_create(
        Message(conversation=conversation, owner=user, seq=i, role="user", content=f"m{i}")
        for i in range(1, 1_101)
    )
    conversation.message_count = 1_100
    conversation.save(update_fields=["message_count"])
    return conversation


@pytest.mark.parametrize(
    ("path", "size", "status", "count"),
    [
        (TASKS, 1, 200, 1),
        (TASKS, 100, 200, 100),
        (TASKS, 101, 400, None),
        (TASKS, 0, 400, None),
        (TASKS, -1, 400, None),
        (TASKS, 10**30, 400, None),
        (TASKS, "ten", 400, None),
        (TASKS, "1.5", 400, None),
        (TASKS, "", 400, None),
        (CONVERSATIONS, 100, 200, 1),
        (CONVERSATIONS, 101, 400, None),
        ("messages", 1, 200, 1),
        ("messages", 1000, 200, 1000),
        ("messages", 1001, 400, None),
        ("messages", 0, 400, None),
    ],
)
def test_page_size_bounds(api_client, plenty, path, size, status, count):
    if path == "messages":
        path = f"{CONVERSATIONS}{plenty.pk}/messages/"
    response = api_client.get(path, {"page_size": size})
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    if count is not None:
        assert len(response.json()["results"]) == count
    else:
        assert "page_size" in response.json()


def test_default_page_sizes(api_client, plenty):
    assert len(api_client.get(TASKS).json()["results"]) == 20
    messages = api_client.get(f"{CONVERSATIONS}{plenty.pk}/messages/").json()["results"]
    assert len(messages) == 50


# --- a user with 10,000 tasks ---------------------------------------------------------

TEN_THOUSAND = 10_000


@pytest.fixture
def ten_thousand_tasks(user):
    Task.objects.bulk_create(
        (
            Task(owner=user, title=f"task {i}", description="needle" if i % 1000 == 7 else "")
            for i in range(TEN_THOUSAND)
        ),
        batch_size=2_000,
    )
    Task.objects.filter(owner=user, title__endswith="3").update(completed=True)
    return user


def walk(client, url):
    """Every result of a list, following next links; and the time of each page."""
    ids, times = [], []
    while url:
        started = time.monotonic()
        response = client.get(url)
        times.append(time.monotonic() - started)
        assert response.status_code == 200, response.content[:300]
        body = response.json()
        ids.extend(item["id"] for item in body["results"])
        url = body["next"]
    return ids, times


def test_ten_thousand_tasks_listed_filtered_searched_and_private(
    ten_thousand_tasks, other_user, django_assert_max_num_queries
):
    client = client_for(ten_thousand_tasks)
    ids, times = walk(client, f"{TASKS}?page_size=100")
    assert len(ids) == TEN_THOUSAND
    assert len(set(ids)) == TEN_THOUSAND
    assert len(times) == TEN_THOUSAND // 100
    # Keyset pages: the last page costs what the first does (no OFFSET, no COUNT).
    assert max(times[-10:]) < max(times[:10]) * 5 + 0.05, (times[:10], times[-10:])
    assert sum(times) < 30
    with django_assert_max_num_queries(3):
        client.get(f"{TASKS}?page_size=100&ordering=created_at")

    completed, _ = walk(client, f"{TASKS}?completed=true&page_size=100")
    assert len(completed) == TEN_THOUSAND // 10
    found, _ = walk(client, f"{TASKS}?search=needle&page_size=100")
    assert len(found) == TEN_THOUSAND // 1000
    by_update, _ = walk(client, f"{TASKS}?ordering=updated_at&page_size=100")
    assert len(by_update) == len(set(by_update)) == TEN_THOUSAND

    response = client_for(other_user).get(TASKS, {"page_size": 100})
    assert response.json() == {"next": None, "previous": None, "results": []}


def test_ten_thousand_messages_newest_first_and_after_seq(user):
    conversation = ConversationFactory(owner=user)
    Message.objects.bulk_create(
        (
            Message(conversation=conversation, owner=user, seq=i, role="user", content=f"m{i}")
            for i in range(1, TEN_THOUSAND + 1)
        ),
        batch_size=2_000,
    )
    client = client_for(user)
    path = f"{CONVERSATIONS}{conversation.pk}/messages/"
    newest = client.get(path, {"ordering": "-seq", "page_size": 100}).json()["results"]
    assert [m["seq"] for m in newest] == list(range(TEN_THOUSAND, TEN_THOUSAND - 100, -1))
    tail = client.get(path, {"after_seq": TEN_THOUSAND - 5}).json()["results"]
    assert [m["seq"] for m in tail] == list(range(TEN_THOUSAND - 4, TEN_THOUSAND + 1))
    ids, _ = walk(client, f"{path}?page_size=1000")
    assert len(ids) == TEN_THOUSAND == len(set(ids))


# --- over real HTTP (gunicorn) --------------------------------------------------------

E2E = pytest.mark.e2e


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The Procfile's gunicorn on a database of its own on the suite's PostgreSQL."""
    import psycopg
    from psycopg import sql

    from testing.servers import GunicornServer, production_env, run_release

    base = os.environ["DATABASE_URL"]
    name = f"limits_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = base.rsplit("/", 1)[0] + "/" + name
    env = production_env(
        url,
        WEB_CONCURRENCY="2",
        GUNICORN_THREADS="4",
        THROTTLE_RATE_AUTH="100000/minute",
        GUNICORN_TIMEOUT="10",
    )
    run_release(env)
    server = GunicornServer(env, log_path=tmp_path_factory.mktemp("limits") / "gunicorn.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()
        with psycopg.connect(base, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(scope="module")
def token(site):
    from reliability.http import Client

    client = Client(site.url)
    credentials = {"username": f"limits-{uuid.uuid4().hex[:8]}", "password": "a-Long-passw0rd!"}
    assert client.post("/api/v1/auth/register/", credentials).status == 201
    return client.post("/api/v1/auth/token/", credentials).data["access"]


def raw_request(site, head, body=b"", timeout=15):
    """Send bytes as they are; the status line and body of the answer."""
    with socket.create_connection(("127.0.0.1", site.port), timeout=timeout) as sock:
        sock.sendall(head + body)
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        return answer.status, dict(answer.getheaders()), answer.read()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@pytest.mark.e2e
@E2E
def test_chunked_body_over_the_limit_is_refused_over_http(site, token):
    """No Content-Length, 512 KiB in chunks: refused with a JSON 4xx, nothing stored.

    Django does not read a body without Content-Length (it is taken as empty), so
    this is a 400 for the missing title rather than a 413; either way the big body
    never reaches memory or the database.
    """
    from reliability.http import Client

    chunk = b'{"title": "chunked"' + b" " * 65_000
    chunks = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    chunks += b"".join(b"%x\r\n%s\r\n" % (65_536, b" " * 65_536) for _ in range(8))
    chunks += b"1\r\n}\r\n0\r\n\r\n"
    head = (
        b"POST /api/v1/tasks/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Authorization: Bearer " + token.encode() + b"\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n"
    )
    status, headers, body = raw_request(site, head, chunks)
    assert status in (400, 411, 413), (status, body[:300])
    assert headers["Content-Type"].startswith("application/json")
    listed = Client(site.url, token=token).get("/api/v1/tasks/?search=chunked")
    assert listed.status == 200 and listed.data["results"] == []


@pytest.mark.e2e
@E2E
def test_declared_oversized_body_is_refused_before_it_is_sent(site, token):
    head = (
        b"POST /api/v1/tasks/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Authorization: Bearer " + token.encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: 104857600\r\n"
        b"Connection: close\r\n\r\n"
    )
    started = time.monotonic()
    status, headers, body = raw_request(site, head, b"{")
    assert status == 413, (status, body[:300])
    assert time.monotonic() - started < 5


@pytest.mark.e2e
@E2E
def test_floods_of_big_and_deep_bodies_leave_worker_memory_bounded(site, token):
    from reliability.http import Client

    client = Client(site.url, token=token)
    client.get("/api/v1/tasks/")
    before = sum(rss_kib(pid) for pid in site.worker_pids())
    deep = ("[" * 100_000 + "]" * 100_000).encode()
    statuses = set()
    for _ in range(60):
        statuses.add(client.request("POST", "/api/v1/tasks/", {"title": "x" * 200_000}).status)
        conn = http.client.HTTPConnection("127.0.0.1", site.port, timeout=15)
        conn.request(
            "POST",
            "/api/v1/tasks/",
            body=deep,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        statuses.add(conn.getresponse().status)
        conn.close()
    after = sum(rss_kib(pid) for pid in site.worker_pids())
    assert statuses <= {400, 413}, statuses
    assert after - before < 64 * 1024, (before, after)


@pytest.mark.e2e
@E2E
def test_slow_clients_do_not_stop_the_others(site, token):
    """Connections that trickle their headers, or stall mid-body, do not stop other
    clients being served while each worker keeps a free thread (3 stalled, 4 threads
    a worker: a gthread worker accepts connections whether or not a thread is free, so
    4 stalled on one worker would block it; docs/reliability.md). No 5xx."""
    from reliability.http import Client

    stalled = []
    try:
        for _ in range(2):  # headers never finished
            sock = socket.create_connection(("127.0.0.1", site.port), timeout=30)
            sock.sendall(b"GET /api/v1/tasks/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            stalled.append(sock)
        for _ in range(1):  # a body that never arrives in full
            sock = socket.create_connection(("127.0.0.1", site.port), timeout=30)
            sock.sendall(
                b"POST /api/v1/tasks/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Authorization: Bearer " + token.encode() + b"\r\n"
                b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"ti'
            )
            stalled.append(sock)
        client = Client(site.url, token=token, timeout=10)
        for number in range(20):
            started = time.monotonic()
            reply = client.post("/api/v1/tasks/", {"title": f"while others stall {number}"})
            assert reply.status == 201, reply
            assert time.monotonic() - started < 5
    finally:
        for sock in stalled:
            sock.close()


@pytest.mark.e2e
@E2E
@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        pytest.param(
            b"GET /api/v1/tasks/?q=" + b"a" * 9_000 + b" HTTP/1.1", 414, id="request_line_9k"
        ),
        pytest.param(b"GET /api/v1/tasks/ HTTP/1.1\r\nX-Big: " + b"a" * 9_000, 431, id="header_9k"),
        pytest.param(
            b"GET /api/v1/tasks/ HTTP/1.1\r\n" + b"\r\n".join(b"X-%d: a" % i for i in range(150)),
            431,
            id="150_headers",
        ),
        pytest.param(b"GET /api/v1/tasks/ HTTP/1.1\r\nX-Nul: a\x00b", 400, id="nul_in_header"),
        pytest.param(
            b"POST /api/v1/tasks/ HTTP/1.1\r\nContent-Length: x", 400, id="content_length_x"
        ),
    ],
)
def test_malformed_or_oversized_http_is_answered_in_json(site, request_bytes, status):
    """What gunicorn refuses before Django sees it is JSON too: no HTML under /api/."""
    head = request_bytes + b"\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    answer_status, headers, body = raw_request(site, head)
    assert answer_status == status, (answer_status, body[:200])
    assert headers.get("Content-Type", "").startswith("application/json"), (headers, body[:200])
    assert orjson.loads(body)["detail"]
