"""Every endpoint costs a fixed number of queries, whatever the page size or data.

At most 3 per read and 6 per write, authentication included (API issue #4).
"""

import uuid

import pytest

from testing.api import READ_BUDGET, WRITE_BUDGET

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/tasks/?page_size=1",
        "/api/v1/tasks/?page_size=100",
        "/api/v1/tasks/?page_size=100&completed=false&search=Task&ordering=updated_at",
        "/api/v1/conversations/?page_size=1",
        "/api/v1/conversations/?page_size=100",
        "/api/v1/conversations/?page_size=100&archived=true",
        "/api/v1/auth/me/",
    ],
)
def test_list_reads_stay_within_budget(api_client, populated, url, assert_max_queries):
    with assert_max_queries(READ_BUDGET):
        response = api_client.get(url)
    assert response.status_code == 200


def test_detail_reads_stay_within_budget(api_client, populated, assert_max_queries):
    task, conversation = populated[0][0], populated[1][0]
    with assert_max_queries(READ_BUDGET):
        assert api_client.get(f"/api/v1/tasks/{task.pk}/").status_code == 200
    with assert_max_queries(READ_BUDGET):
        assert api_client.get(f"/api/v1/conversations/{conversation.pk}/").status_code == 200


def test_writes_stay_within_budget(api_client, populated, assert_max_queries):
    task, conversation = populated[0][0], populated[1][0]
    writes = [
        ("post", "/api/v1/tasks/", {"title": "new"}),
        ("put", f"/api/v1/tasks/{task.pk}/", {"title": "put"}),
        ("patch", f"/api/v1/tasks/{task.pk}/", {"completed": True}),
        ("delete", f"/api/v1/tasks/{task.pk}/", None),
        ("post", "/api/v1/conversations/", {"title": "c"}),
        ("patch", f"/api/v1/conversations/{conversation.pk}/", {"title": "t"}),
        (
            "post",
            f"/api/v1/conversations/{conversation.pk}/messages/",
            {"role": "user", "content": "hi", "client_id": str(uuid.uuid4())},
        ),
        ("delete", f"/api/v1/conversations/{conversation.pk}/", None),
    ]
    for method, url, body in writes:
        # A conversation's delete clears four tables (events, turns, messages, itself).
        budget = WRITE_BUDGET + (method == "delete" and "conversations" in url)
        with assert_max_queries(budget):
            response = getattr(api_client, method)(url, body)
        assert response.status_code < 300, (method, url, response.content)
