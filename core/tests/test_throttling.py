"""The shared throttle counter (core.throttling): exact counts in fixed windows."""

import pytest

from core.models import RateCounter
from core.throttling import LEASE_SHARE, count_requests

pytestmark = pytest.mark.django_db


def test_each_claim_of_a_window_adds_its_requests():
    assert [count_requests("user:1", 10) for _ in range(3)] == [1, 2, 3]
    assert count_requests("user:1", 10, 5) == 8
    assert count_requests("user:2", 10) == 1
    assert RateCounter.objects.get(key="user:1").count == 8


def test_a_new_window_starts_again_and_a_late_request_counts_in_the_current_one():
    count_requests("user:1", 10)
    count_requests("user:1", 10)

    assert count_requests("user:1", 11) == 1
    assert count_requests("user:1", 10) == 2  # late from window 10: counted in 11
    assert RateCounter.objects.get(key="user:1").window_number == 11


def test_a_process_claims_blocks_and_never_admits_more_than_the_rate(user, api_client, settings):
    """At 100 an hour, a process claims 2 requests at a time: 5 requests are 3 claims,
    and the 101st request of the window is refused."""
    from core.throttling import UserRateThrottle

    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "user": "100/hour"}
    UserRateThrottle.THROTTLE_RATES = rates
    try:
        first = [api_client.get("/api/v1/tasks/").status_code for _ in range(5)]
        assert RateCounter.objects.get(key=f"user:{user.pk}").count == 6 == 3 * 100 // LEASE_SHARE
        rest = [api_client.get("/api/v1/tasks/").status_code for _ in range(96)]
    finally:
        UserRateThrottle.THROTTLE_RATES = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]

    assert first + rest == [200] * 100 + [429]


def test_throttled_answer_is_429_with_retry_after(api_client, settings):
    from core.throttling import UserRateThrottle

    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "user": "2/hour"}
    UserRateThrottle.THROTTLE_RATES = rates
    try:
        answers = [api_client.get("/api/v1/tasks/") for _ in range(3)]
    finally:
        UserRateThrottle.THROTTLE_RATES = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]

    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert 0 < int(answers[2]["Retry-After"]) <= 3600
    assert answers[2].json()["detail"]
