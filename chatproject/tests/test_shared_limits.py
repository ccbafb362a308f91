"""Limits shared by every process: four gunicorn workers admit the rate one would.

gunicorn from the Procfile with four worker processes, the user rate set to 100 an
hour, and 300 requests of one user sent 16 at a time: the workers count in one
store (the database, or Redis with REDIS_URL), so at most 100 are admitted, and at
least 90 (each process may leave part of its last block of 2 unused), where
per-process counting would admit up to 400.
"""

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from testing.pgserver import TempPostgres, scratch_database
from testing.redisserver import temporary_redis
from testing.servers import GunicornServer, collectstatic, production_env, run_release

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

RATE = 100
SENT = 300
PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(params=["database", "redis"])
def site(request):
    primary = TempPostgres.from_env()
    collectstatic()
    with contextlib.ExitStack() as stack:
        direct_url = stack.enter_context(scratch_database(primary.url, prefix="limits"))
        extra = {"WEB_CONCURRENCY": 4, "GUNICORN_THREADS": 4, "THROTTLE_RATE_USER": f"{RATE}/hour"}
        if request.param == "redis":
            extra["REDIS_URL"] = stack.enter_context(temporary_redis())
        env = production_env(direct_url, **extra)
        run_release(env)
        yield stack.enter_context(GunicornServer(env))


def access_token(base_url):
    with httpx.Client(base_url=base_url, timeout=30) as client:
        assert (
            client.post(
                "/api/v1/auth/register/", json={"username": "ada", "password": PASSWORD}
            ).status_code
            == 201
        )
        return client.post(
            "/api/v1/auth/token/", json={"username": "ada", "password": PASSWORD}
        ).json()["access"]


def test_four_processes_admit_the_configured_rate(site):
    token = access_token(site.url)
    if time.time() % 3600 > 3600 - 30:  # the hour's window would end mid-test
        time.sleep(3600 - time.time() % 3600 + 1)
    headers = {"Authorization": f"Bearer {token}"}

    def get(_):
        with httpx.Client(base_url=site.url, timeout=30, headers=headers) as client:
            return client.get("/api/v1/tasks/").status_code

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(get, range(SENT)))

    admitted = statuses.count(200)
    assert statuses.count(200) + statuses.count(429) == SENT, set(statuses)
    # Never more than the rate; fewer by at most the blocks other processes left unused.
    assert RATE * 0.9 <= admitted <= RATE, admitted
