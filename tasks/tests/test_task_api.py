"""The tasks endpoints, through HTTP, as API.md describes them."""

import pytest

from tasks.models import Task
from testing.factories import TaskFactory

pytestmark = pytest.mark.django_db

TASKS = "/api/v1/tasks/"


def detail(task_id):
    return f"{TASKS}{task_id}/"


def test_create_task_returns_it_with_defaults(api_client, user):
    response = api_client.post(TASKS, {"title": "  Buy milk  "})

    assert response.status_code == 201
    body = response.json()
    assert body["title"] == "Buy milk"
    assert body["description"] == ""
    assert body["completed"] is False
    assert body["created_at"].endswith("Z")
    assert body["due_at"] is None
    assert body["priority"] == "normal"
    assert body["tags"] == []
    assert body["repeat"] is None
    assert set(body) == {
        "id", "title", "description", "completed", "created_at", "updated_at",
        "due_at", "priority", "tags", "repeat",
    }  # fmt: skip
    assert Task.objects.get(pk=body["id"]).owner == user


def test_owner_in_body_is_ignored(api_client, user, other_user):
    response = api_client.post(TASKS, {"title": "mine", "owner": other_user.pk})

    assert response.status_code == 201
    assert Task.objects.get(pk=response.json()["id"]).owner == user


@pytest.mark.parametrize(
    "payload, field",
    [
        ({}, "title"),
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": ["a"]}, "title"),
        ({"title": "ok", "description": "d" * 1001}, "description"),
        ({"title": "ok", "completed": "perhaps"}, "completed"),
    ],
)
def test_invalid_task_is_400_naming_the_field(api_client, payload, field):
    response = api_client.post(TASKS, payload)

    assert response.status_code == 400
    assert field in response.json()
    assert not Task.objects.exists()


def test_title_of_exactly_200_characters_is_accepted(api_client):
    response = api_client.post(TASKS, {"title": "x" * 200, "description": "d" * 1000})

    assert response.status_code == 201


def test_retrieve_update_and_delete_own_task(api_client, user):
    task = TaskFactory(owner=user, title="old")

    assert api_client.get(detail(task.pk)).json()["title"] == "old"

    put = api_client.put(detail(task.pk), {"title": "new", "completed": True})
    assert put.status_code == 200
    assert put.json()["title"] == "new"
    assert put.json()["completed"] is True

    patch = api_client.patch(detail(task.pk), {"description": "details"})
    assert patch.status_code == 200
    assert patch.json()["title"] == "new"
    assert patch.json()["description"] == "details"

    assert api_client.delete(detail(task.pk)).status_code == 204
    assert not Task.objects.filter(pk=task.pk).exists()
    assert api_client.get(detail(task.pk)).status_code == 404


def test_update_moves_updated_at_forward(api_client, user):
    task = TaskFactory(owner=user)
    before = task.updated_at

    api_client.patch(detail(task.pk), {"completed": True})

    task.refresh_from_db()
    assert task.updated_at > before


def test_put_without_title_is_400_and_changes_nothing(api_client, user):
    task = TaskFactory(owner=user, title="keep")

    response = api_client.put(detail(task.pk), {"completed": True})

    assert response.status_code == 400
    task.refresh_from_db()
    assert (task.title, task.completed) == ("keep", False)


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_other_users_task_is_404_and_unchanged(api_client, other_user, method):
    task = TaskFactory(owner=other_user, title="theirs")

    response = getattr(api_client, method)(detail(task.pk), {"title": "stolen"})

    assert response.status_code == 404
    assert "detail" in response.json()
    task.refresh_from_db()
    assert task.title == "theirs"


def test_list_shows_only_own_tasks(api_client, user, other_user):
    TaskFactory(owner=user, title="mine")
    TaskFactory(owner=other_user, title="theirs")

    titles = [t["title"] for t in api_client.get(TASKS).json()["results"]]

    assert titles == ["mine"]


def test_list_is_newest_first_by_default_and_orderable(api_client, user):
    first = TaskFactory(owner=user, title="first")
    TaskFactory(owner=user, title="second")
    first.title = "first, edited"
    first.save()

    def titles(query=""):
        return [t["title"] for t in api_client.get(TASKS + query).json()["results"]]

    assert titles() == ["second", "first, edited"]
    assert titles("?ordering=created_at") == ["first, edited", "second"]
    assert titles("?ordering=-updated_at") == ["first, edited", "second"]
    assert titles("?ordering=updated_at") == ["second", "first, edited"]


def test_unknown_ordering_is_400(api_client):
    response = api_client.get(TASKS + "?ordering=title")

    assert response.status_code == 400
    assert "ordering" in response.json()


def test_filter_by_completed(api_client, user):
    TaskFactory(owner=user, title="done", completed=True)
    TaskFactory(owner=user, title="todo", completed=False)

    done = api_client.get(TASKS + "?completed=true").json()["results"]
    todo = api_client.get(TASKS + "?completed=false").json()["results"]

    assert [t["title"] for t in done] == ["done"]
    assert [t["title"] for t in todo] == ["todo"]


def test_invalid_completed_filter_is_400(api_client):
    response = api_client.get(TASKS + "?completed=perhaps")

    assert response.status_code == 400


def test_search_matches_title_and_description_case_insensitively(api_client, user, other_user):
    TaskFactory(owner=user, title="Buy MILK")
    TaskFactory(owner=user, title="Call mom", description="about the milk run")
    TaskFactory(owner=user, title="Walk dog")
    TaskFactory(owner=other_user, title="milk for them")

    found = api_client.get(TASKS + "?search=milk").json()["results"]

    assert sorted(t["title"] for t in found) == ["Buy MILK", "Call mom"]


def test_search_and_completed_combine(api_client, user):
    TaskFactory(owner=user, title="milk", completed=True)
    TaskFactory(owner=user, title="milk again", completed=False)

    found = api_client.get(TASKS + "?search=milk&completed=true").json()["results"]

    assert [t["title"] for t in found] == ["milk"]


def test_unauthenticated_is_401_with_code(anon_client):
    response = anon_client.get(TASKS)

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert "detail" in response.json()


@pytest.mark.parametrize(
    "payload", [{"title": 5}, {"title": True}, {"title": "ok", "description": 7}]
)
def test_non_string_text_is_400(api_client, payload):
    response = api_client.post(TASKS, payload)

    assert response.status_code == 400
    assert not Task.objects.exists()
