"""Streamed turns across processes: two servers on one PostgreSQL database.

The Procfile's `web:` (gunicorn, threads, WSGI) and `stream:` (gunicorn with the
uvicorn worker, ASGI) lines run side by side on one database, as a platform runs
them; the openai agent talks to the slow fake model of this test process (a word
every 30 ms). A turn started on one is followed live and cancelled from the
other, and a client that goes away mid-stream leaves a turn that completes.
"""

import json
import os
import time
import urllib.request
import uuid

import pytest

from testing.fake_openai import FakeOpenAI, text_reply
from testing.pgserver import scratch_database
from testing.servers import (
    GunicornServer,
    HttpClient,
    collectstatic,
    production_env,
    run_release,
)
from testing.sse import read_events

pytestmark = pytest.mark.e2e

WORDS = 120
REPLY = " ".join(f"word{i}" for i in range(WORDS))


@pytest.fixture(scope="module")
def fake_model():
    fake = FakeOpenAI(token_delay=0.03, default=text_reply(REPLY))
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def servers(fake_model):
    """`web` and `stream` on one fresh database; yields (web, stream)."""
    collectstatic()
    with scratch_database(os.environ["DATABASE_URL"]) as url:
        env = production_env(
            url,
            WEB_CONCURRENCY=2,
            GUNICORN_THREADS=4,
            CHAT_AGENT="openai",
            CHAT_MODEL="fake-model",
            OPENAI_API_KEY="test-key",
            OPENAI_BASE_URL=fake_model.url,
            THROTTLE_RATE_AUTH="1000/minute",
        )
        run_release(env)
        with GunicornServer(env) as web, GunicornServer(env, process="stream") as stream:
            yield web, stream


@pytest.fixture(scope="module")
def user_token(servers):
    client = HttpClient(servers[0].url)
    client.login(f"streamer-{uuid.uuid4().hex[:8]}", "Quiet-Harbor-7731-Lantern")
    return client.token


def open_stream(url, token, body=None, last_event_id=None):
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    request = urllib.request.Request(url, data=data, headers=headers)
    response = urllib.request.urlopen(request, timeout=30)
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    return response


def deltas(events):
    return "".join(e.data["delta"] for e in events if e.name == "message.delta")


@pytest.mark.parametrize("start_on", ["web", "stream"])
def test_a_turn_started_on_one_server_is_followed_live_and_cancelled_from_the_other(
    servers, user_token, start_on
):
    web, stream = servers
    first, other = (web, stream) if start_on == "web" else (stream, web)
    client_id = str(uuid.uuid4())
    started = open_stream(
        f"{first.url}/api/v1/chat/", user_token, {"message": "talk", "client_id": client_id}
    )
    seen = list(read_events(started, until=lambda e: e.name == "message.delta"))

    follower = open_stream(
        f"{other.url}/api/v1/chat/turns/{client_id}/events/", user_token, last_event_id=seen[-1].id
    )
    followed = list(
        read_events(follower, until=lambda e: len(deltas([e])) and e.id > seen[-1].id + 2)
    )
    status = HttpClient(other.url, user_token).get(f"/api/v1/chat/turns/{client_id}/").json()
    assert status["status"] == "running"  # followed live, not replayed afterwards

    cancel_sent = time.monotonic()
    cancel = HttpClient(other.url, user_token).post(f"/api/v1/chat/turns/{client_id}/cancel/")
    rest_of_start = list(read_events(started))
    rest_of_follow = list(read_events(follower))
    stopped_in = time.monotonic() - cancel_sent

    assert cancel.status == 200
    assert stopped_in < 2
    assert rest_of_start[-1].name == rest_of_follow[-1].name == "turn.cancelled"
    from_start = seen + rest_of_start
    from_follow = seen + followed + rest_of_follow
    assert [e.id for e in from_start] == list(range(1, len(from_start) + 1))
    assert [e.id for e in from_follow] == [e.id for e in from_start]
    reply = from_start[-1].data["assistant_message"]["content"]
    assert deltas(from_start) == deltas(from_follow) == reply
    assert REPLY.startswith(reply) and reply != REPLY
    turn = HttpClient(first.url, user_token).get(f"/api/v1/chat/turns/{client_id}/").json()
    assert turn["status"] == "cancelled"


@pytest.mark.parametrize("start_on", ["web", "stream"])
def test_a_client_that_disconnects_mid_stream_leaves_a_turn_that_completes(
    servers, user_token, start_on
):
    web, stream = servers
    first, other = (web, stream) if start_on == "web" else (stream, web)
    client_id = str(uuid.uuid4())
    response = open_stream(
        f"{first.url}/api/v1/chat/", user_token, {"message": "talk", "client_id": client_id}
    )
    list(read_events(response, until=lambda e: e.name == "message.delta"))

    response.close()

    client = HttpClient(other.url, user_token)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = client.get(f"/api/v1/chat/turns/{client_id}/").json()["status"]
        if status != "running":
            break
        time.sleep(0.2)
    assert status == "succeeded"
    replay = list(
        read_events(open_stream(f"{other.url}/api/v1/chat/turns/{client_id}/events/", user_token))
    )
    assert replay[-1].name == "turn.done"
    assert deltas(replay) == REPLY == replay[-1].data["assistant_message"]["content"]
