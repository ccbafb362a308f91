"""Every endpoint costs a fixed number of queries, whatever the page size or data.

At most 3 per read and 6 per write, authentication included (API issue #4).
"""

import uuid

import pytest

from testing.factories import ConversationFactory, TaskFactory, add_messages

pytestmark = pytest.mark.django_db

READ_BUDGET = 3
WRITE_BUDGET = 6


@pytest.fixture
def data(user):
    tasks = [TaskFactory(owner=user) for _ in range(101)]
    conversations = [ConversationFactory(owner=user) for _ in range(101)]
    add_messages(conversations[0], 120)
    return tasks, conversations


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
def test_list_reads_stay_within_budget(api_client, data, url, assert_max_queries):
    with assert_max_queries(READ_BUDGET):
        response = api_client.get(url)
    assert response.status_code == 200


@pytest.mark.parametrize(
    "query", ["?page_size=1", "?page_size=1000", "?ordering=-seq&page_size=100"]
)
def test_message_reads_stay_within_budget(api_client, data, query, assert_max_queries):
    conversation = data[1][0]
    url = f"/api/v1/conversations/{conversation.pk}/messages/{query}"
    with assert_max_queries(READ_BUDGET):
        response = api_client.get(url)
    assert response.status_code == 200


def test_next_page_costs_what_page_one_costs(api_client, data, assert_max_queries):
    next_url = api_client.get("/api/v1/tasks/?page_size=10").json()["next"]
    with assert_max_queries(READ_BUDGET):
        assert api_client.get(next_url).status_code == 200


def test_detail_reads_stay_within_budget(api_client, data, assert_max_queries):
    task, conversation = data[0][0], data[1][0]
    with assert_max_queries(READ_BUDGET):
        assert api_client.get(f"/api/v1/tasks/{task.pk}/").status_code == 200
    with assert_max_queries(READ_BUDGET):
        assert api_client.get(f"/api/v1/conversations/{conversation.pk}/").status_code == 200


def test_writes_stay_within_budget(api_client, data, assert_max_queries):
    task, conversation = data[0][0], data[1][0]
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
        with assert_max_queries(WRITE_BUDGET):
            response = getattr(api_client, method)(url, body)
        assert response.status_code < 300, (method, url, response.content)


def test_idempotent_retry_stays_within_budget(api_client, data, assert_max_queries):
    conversation = data[1][0]
    payload = {"role": "user", "content": "hi", "client_id": str(uuid.uuid4())}
    url = f"/api/v1/conversations/{conversation.pk}/messages/"
    api_client.post(url, payload)
    with assert_max_queries(WRITE_BUDGET):
        assert api_client.post(url, payload).status_code == 200


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


# Deleting an account clears ten tables (the user's rows in each, and Django's
# own: groups, permissions, admin log, tokens); what matters is that the count
# does not grow with the data.
ACCOUNT_DELETE_BUDGET = 16


def test_delete_me_costs_the_same_for_small_and_large_accounts(
    api_client, data, other_client, other_user, assert_max_queries
):
    TaskFactory(owner=other_user)
    with assert_max_queries(ACCOUNT_DELETE_BUDGET) as small:
        assert other_client.delete("/api/v1/auth/me/").status_code == 204
    with assert_max_queries(ACCOUNT_DELETE_BUDGET) as large:
        assert api_client.delete("/api/v1/auth/me/").status_code == 204
    assert len(large.captured_queries) == len(small.captured_queries)
