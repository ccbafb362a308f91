"""Every endpoint costs a fixed number of queries, whatever the page size or data.

At most 3 per read and 6 per write, authentication included (API issue #4).
"""

import uuid

import pytest

from testing.api import READ_BUDGET, WRITE_BUDGET

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "query", ["?page_size=1", "?page_size=1000", "?ordering=-seq&page_size=100"]
)
def test_message_reads_stay_within_budget(api_client, populated, query, assert_max_queries):
    conversation = populated[1][0]
    url = f"/api/v1/conversations/{conversation.pk}/messages/{query}"
    with assert_max_queries(READ_BUDGET):
        response = api_client.get(url)
    assert response.status_code == 200


def test_idempotent_retry_stays_within_budget(api_client, populated, assert_max_queries):
    conversation = populated[1][0]
    payload = {"role": "user", "content": "hi", "client_id": str(uuid.uuid4())}
    url = f"/api/v1/conversations/{conversation.pk}/messages/"
    api_client.post(url, payload)
    with assert_max_queries(WRITE_BUDGET):
        assert api_client.post(url, payload).status_code == 200
