"""A database outage: 503 JSON within a bound while PostgreSQL is gone, 200 again when it
is back, from the same gunicorn processes.

The test runs a PostgreSQL of its own (`TempPostgres.temporary()`), so the suite's
server is never stopped. Three outages in a row: a fast shutdown, an immediate
shutdown (a crash, as far as clients can tell), and a server that accepts TCP
connections but never answers (a network black hole), where only the connect
timeout stands between a request and a hang.
"""

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from testing.pgserver import TempPostgres
from testing.servers import (
    GunicornServer,
    HttpClient,
    production_env,
    run_release,
)

pytestmark = pytest.mark.e2e

CONNECT_TIMEOUT = 3  # DB_CONNECT_TIMEOUT's default, which production uses
BOUND = CONNECT_TIMEOUT + 2  # "a few seconds": the timeout plus a request's own work


@pytest.fixture(scope="module")
def site():
    """gunicorn (2 workers x 4 threads) on a PostgreSQL that this module may stop."""
    with TempPostgres.temporary() as postgres:
        env = production_env(postgres.url, WEB_CONCURRENCY=2, GUNICORN_THREADS=4)
        run_release(env)
        with GunicornServer(env) as server:
            server.postgres = postgres
            client = HttpClient(server.url, timeout=30)
            client.login("outage", "Outage-Passw0rd-7741")
            server.client = client
            yield server


def timed(client, path):
    started = time.monotonic()
    answer = client.get(path)
    return answer, time.monotonic() - started


def get_many(client, paths):
    """Requests at once, so several threads of both workers meet the outage."""
    with ThreadPoolExecutor(len(paths)) as pool:
        return list(pool.map(lambda path: timed(client, path), paths))


def assert_unavailable(answers):
    for answer, seconds in answers:
        assert answer.status == 503, answer
        assert answer.content_type == "application/json", answer
        assert seconds < BOUND, f"503 took {seconds:.1f}s, over the {BOUND}s bound"
    return max(seconds for _, seconds in answers)


def assert_serves_again(server, processes):
    """200 from the same master and workers within the bound, and steadily after."""
    deadline = time.monotonic() + BOUND
    while True:
        answer = server.client.get("/api/v1/tasks/")
        if answer.status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert answer.status == 200, answer
    answers = get_many(server.client, ["/api/v1/tasks/"] * 8 + ["/readyz"] * 2)
    assert [answer.status for answer, _ in answers] == [200] * 10
    assert (server.master_pid, server.worker_pids()) == processes, "gunicorn was restarted"


API = ["/api/v1/tasks/", "/api/v1/conversations/", "/api/v1/auth/me/"] * 2


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_stopped_database_is_503_json_then_200_without_restart(site, mode):
    assert get_many(site.client, API)[0][0].status == 200  # connections are open
    processes = (site.master_pid, site.worker_pids())
    assert len(processes[1]) == 2

    assert site.postgres.stop(mode), "PostgreSQL did not stop"
    try:
        answers = get_many(site.client, API)
        assert_unavailable(answers)
        assert all(answer.json()["detail"] for answer, _ in answers)
        assert answers[0][0].headers["Retry-After"]
        ready, _ = timed(site.client, "/readyz")
        assert ready.status == 503
        assert ready.json()["database"].startswith("unreachable")
        assert timed(site.client, "/healthz")[0].status == 200
    finally:
        site.postgres.start()

    assert_serves_again(site, processes)


def test_unanswering_database_is_503_json_within_the_connect_timeout(site):
    processes = (site.master_pid, site.worker_pids())
    assert site.postgres.stop("immediate")
    # A listener that completes the TCP handshake and then says nothing.
    black_hole = socket.socket()
    black_hole.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    black_hole.bind(("127.0.0.1", site.postgres.port))
    black_hole.listen(64)
    try:
        answers = get_many(site.client, ["/api/v1/tasks/", "/api/v1/auth/me/", "/readyz"])
        slowest = assert_unavailable(answers)
        assert slowest >= CONNECT_TIMEOUT - 0.5, "the connect timeout was not what bounded it"
        assert timed(site.client, "/healthz")[0].status == 200
    finally:
        black_hole.close()
        site.postgres.start()

    assert_serves_again(site, processes)
