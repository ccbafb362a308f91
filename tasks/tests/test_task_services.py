"""Task rules at the service level: scoped to an owner, validated, never leaking."""

import pytest

from tasks import selectors, services
from testing.factories import TaskFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_create_strips_and_stores_for_owner():
    owner = UserFactory()

    task = services.task_create(owner=owner, title="  Buy milk ")

    assert (task.title, task.owner, task.completed) == ("Buy milk", owner, False)


@pytest.mark.parametrize("title", ["", "   ", "x" * 201, None, 5, "a\x00b"])
def test_create_refuses_bad_titles(title):
    with pytest.raises(services.InvalidTask):
        services.task_create(owner=UserFactory(), title=title)


def test_other_owners_task_is_not_found_for_every_operation():
    task = TaskFactory(title="theirs")
    stranger = UserFactory()

    for operation in (services.task_get, services.task_complete, services.task_delete):
        with pytest.raises(services.TaskNotFound):
            operation(owner=stranger, task_id=task.pk)

    task.refresh_from_db()
    assert (task.title, task.completed) == ("theirs", False)


@pytest.mark.parametrize("task_id", ["abc", None, 10**30, -1])
def test_bad_ids_are_not_found(task_id):
    with pytest.raises(services.TaskNotFound):
        services.task_get(owner=UserFactory(), task_id=task_id)


def test_complete_and_delete():
    task = TaskFactory()

    assert services.task_complete(owner=task.owner, task_id=task.pk).completed is True
    deleted = services.task_delete(owner=task.owner, task_id=task.pk)
    assert deleted.pk == task.pk
    with pytest.raises(services.TaskNotFound):
        services.task_get(owner=task.owner, task_id=task.pk)


def test_list_filters_by_status_and_text():
    owner = UserFactory()
    TaskFactory(owner=owner, title="milk", completed=True)
    TaskFactory(owner=owner, title="bread")
    TaskFactory(title="milk of someone else")

    assert [t.title for t in selectors.task_list(owner=owner, completed=True)] == ["milk"]
    assert [t.title for t in selectors.task_list(owner=owner, search="BREAD")] == ["bread"]
    assert selectors.task_list(owner=owner).count() == 2
