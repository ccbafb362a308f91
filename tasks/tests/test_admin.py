"""The tasks admin, over HTTP as staff: an owner filter, the owner fixed once the task
exists, changes and deletes through the services, bounded queries."""

import pytest
from django.test import Client

from tasks.models import Task
from testing.factories import TaskFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client():
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def test_tasks_filter_by_owner(staff_client, user, other_user):
    mine = {TaskFactory(owner=user).pk, TaskFactory(owner=user).pk}
    TaskFactory(owner=other_user)

    response = staff_client.get(f"/admin/tasks/task/?owner__id__exact={user.pk}")

    assert {t.pk for t in response.context["cl"].result_list} == mine
    assert f'<option value="{user.pk}" selected>' in response.content.decode()


def test_the_owner_is_not_a_form_field_on_change(staff_client, user, other_user):
    task = TaskFactory(owner=user, title="Old")
    url = f"/admin/tasks/task/{task.pk}/change/"

    page = staff_client.get(url)
    saved = staff_client.post(url, {"owner": other_user.pk, "title": "  New  ", "description": ""})

    task.refresh_from_db()
    assert "owner" not in page.context["adminform"].form.fields
    assert saved.status_code == 302
    assert (task.owner, task.title) == (user, "New")  # stripped, as the service does


def test_a_blank_title_is_a_form_error(staff_client, user):
    task = TaskFactory(owner=user, title="Keep")

    response = staff_client.post(
        f"/admin/tasks/task/{task.pk}/change/", {"title": "bad\x00", "description": ""}
    )

    task.refresh_from_db()
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["title"]
    assert task.title == "Keep"


def test_deleting_tasks_one_and_in_bulk(staff_client, user):
    one, two, three = (TaskFactory(owner=user) for _ in range(3))

    single = staff_client.post(f"/admin/tasks/task/{one.pk}/delete/", {"post": "yes"})
    bulk = staff_client.post(
        "/admin/tasks/task/",
        {"action": "delete_selected", "_selected_action": [two.pk, three.pk], "post": "yes"},
    )

    assert (single.status_code, bulk.status_code) == (302, 302)
    assert not Task.objects.exists()


@pytest.mark.parametrize("size", [30, 3000])
@pytest.mark.parametrize(
    "url", ["/admin/tasks/task/", "/admin/tasks/task/?owner__id__exact={owner}&q=task"]
)
def test_task_list_stays_within_its_query_budget(
    staff_client, size, url, django_assert_max_num_queries
):
    owner = UserFactory()
    Task.objects.bulk_create(
        [Task(owner=owner, title=f"task {i}") for i in range(size)], batch_size=500
    )

    with django_assert_max_num_queries(8):
        response = staff_client.get(url.format(owner=owner.pk))

    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == min(size, 100)
