"""Every endpoint costs a fixed number of queries, whatever the page size or data.

At most 3 per read and 6 per write, authentication included (API issue #4).
"""

import pytest

from testing.api import READ_BUDGET

pytestmark = pytest.mark.django_db


def test_next_page_costs_what_page_one_costs(api_client, populated, assert_max_queries):
    next_url = api_client.get("/api/v1/tasks/?page_size=10").json()["next"]
    with assert_max_queries(READ_BUDGET):
        assert api_client.get(next_url).status_code == 200
