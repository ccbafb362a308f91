"""Every endpoint costs a fixed number of queries, whatever the page size or data.

At most 3 per read and 6 per write, authentication included (API issue #4).
"""

import pytest

from testing.api import ACCOUNT_DELETE_BUDGET, WRITE_BUDGET
from testing.factories import TaskFactory

pytestmark = pytest.mark.django_db


def test_auth_writes_stay_within_budget(anon_client, user, assert_max_queries):
    from testing.factories import DEFAULT_PASSWORD

    credentials = {"username": user.username, "password": DEFAULT_PASSWORD}
    with assert_max_queries(WRITE_BUDGET):
        tokens = anon_client.post("/api/v1/auth/token/", credentials).json()
    with assert_max_queries(WRITE_BUDGET):
        rotated = anon_client.post("/api/v1/auth/token/refresh/", {"refresh": tokens["refresh"]})
    with assert_max_queries(WRITE_BUDGET):
        logout = anon_client.post("/api/v1/auth/logout/", {"refresh": rotated.json()["refresh"]})
    with assert_max_queries(WRITE_BUDGET):
        registered = anon_client.post(
            "/api/v1/auth/register/",
            {"username": "newcomer", "password": "a-long-unusual-passphrase"},
        )
    assert (rotated.status_code, logout.status_code, registered.status_code) == (200, 205, 201)


def test_delete_me_costs_the_same_for_small_and_large_accounts(
    api_client, populated, other_client, other_user, assert_max_queries
):
    TaskFactory(owner=other_user)
    with assert_max_queries(ACCOUNT_DELETE_BUDGET) as small:
        assert other_client.delete("/api/v1/auth/me/").status_code == 204
    with assert_max_queries(ACCOUNT_DELETE_BUDGET) as large:
        assert api_client.delete("/api/v1/auth/me/").status_code == 204
    assert len(large.captured_queries) == len(small.captured_queries)
