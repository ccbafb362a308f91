"""The shared throttle counter (core.throttling): exact counts in fixed windows."""

import pytest

from core.models import RateCounter
from core.throttling import count_request

pytestmark = pytest.mark.django_db


def test_each_request_of_a_window_counts_once():
    assert [count_request("user:1", 10) for _ in range(3)] == [1, 2, 3]
    assert count_request("user:2", 10) == 1
    assert RateCounter.objects.get(key="user:1").count == 3


def test_a_new_window_starts_again_and_a_late_request_counts_in_the_current_one():
    count_request("user:1", 10)
    count_request("user:1", 10)

    assert count_request("user:1", 11) == 1
    assert count_request("user:1", 10) == 2  # late from window 10: counted in 11
    assert RateCounter.objects.get(key="user:1").window_number == 11


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
