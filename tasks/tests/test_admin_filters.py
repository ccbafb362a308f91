"""The task admin's list filters: priority, due (overdue / today / next 7 days / none)
and tag."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from testing.factories import TaskFactory, UserFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/tasks/task/"


@pytest.fixture
def staff_client():
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def tasks():
    now = timezone.now()
    return {
        "overdue": TaskFactory(title="overdue-task", due_at=now - timedelta(days=2)),
        "week": TaskFactory(title="week-task", due_at=now + timedelta(days=3), tags=["work"]),
        "none": TaskFactory(title="none-task", priority="high", tags=["home", "work"]),
    }


def titles(response):
    assert response.status_code == 200
    html = response.content.decode()
    return {name for name in ("overdue-task", "week-task", "none-task") if name in html}


@pytest.mark.parametrize(
    "query, expected",
    [
        ("priority__exact=high", {"none-task"}),
        ("due=overdue", {"overdue-task"}),
        ("due=week", {"week-task"}),
        ("due=none", {"none-task"}),
        ("tag=work", {"week-task", "none-task"}),
        ("tag=home&priority__exact=high", {"none-task"}),
    ],
)
def test_changelist_filters(staff_client, tasks, query, expected):
    assert titles(staff_client.get(f"{CHANGELIST}?{query}")) == expected


def test_tag_filter_offers_the_tags_in_use(staff_client, tasks):
    html = staff_client.get(CHANGELIST).content.decode()

    assert "#work" in html and "#home" in html
