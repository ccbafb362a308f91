"""Bad input of every known kind is a 4xx JSON answer, never a 500, and changes nothing."""

import pytest

from testing.factories import TaskFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "query",
    [
        "?search=%00",
        "?search=a%00b",
        "?completed=%00",
        "?ordering=%00",
        "?cursor=%00",
        "?page_size=%00",
    ],
)
def test_nul_in_query_parameters_is_400(api_client, user, query):
    TaskFactory(owner=user)

    response = api_client.get("/api/v1/tasks/" + query)

    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")


def test_over_long_fields_are_400_and_change_nothing(api_client, user):
    task = TaskFactory(owner=user, title="keep")

    response = api_client.patch(f"/api/v1/tasks/{task.pk}/", {"title": "x" * 10_000})

    assert response.status_code == 400
    task.refresh_from_db()
    assert task.title == "keep"


def test_lone_surrogate_in_query_is_searched_as_a_replacement_character(api_client, user):
    TaskFactory(owner=user, title="plain")

    response = api_client.get("/api/v1/tasks/?search=%ED%A0%80")

    assert response.status_code == 200
    assert response.json()["results"] == []
