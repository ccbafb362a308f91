"""The database itself rejects bad tasks, even when model validation is bypassed."""

import pytest
from django.db import DataError, IntegrityError, transaction

from tasks.models import Task
from testing.factories import TaskFactory, UserFactory

pytestmark = pytest.mark.django_db

# Length limits fail as DataError on PostgreSQL (varchar), as IntegrityError on
# SQLite (the CHECK constraint): either way the row is refused.
REFUSED = (IntegrityError, DataError)


@pytest.mark.parametrize(
    "fields",
    [
        {"title": ""},
        {"title": "   "},
        {"title": "x" * 201},
        {"title": "ok", "description": "d" * 1001},
    ],
)
def test_bulk_create_of_bad_task_is_refused(fields):
    owner = UserFactory()
    with pytest.raises(REFUSED), transaction.atomic():
        Task.objects.bulk_create([Task(owner=owner, **fields)])
    assert not Task.objects.exists()


@pytest.mark.parametrize("fields", [{"title": ""}, {"title": "y" * 300}])
def test_queryset_update_to_bad_task_is_refused(fields):
    task = TaskFactory(title="fine")
    with pytest.raises(REFUSED), transaction.atomic():
        Task.objects.filter(pk=task.pk).update(**fields)
    task.refresh_from_db()
    assert task.title == "fine"


def test_deleting_a_user_deletes_their_tasks():
    task = TaskFactory()
    other = TaskFactory()

    task.owner.delete()

    assert list(Task.objects.all()) == [other]
