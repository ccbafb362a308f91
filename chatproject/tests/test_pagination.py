"""Keyset pagination: walks see every object exactly once, also under inserts."""

import pytest

from testing.factories import ConversationFactory, TaskFactory

pytestmark = pytest.mark.django_db


def test_default_page_sizes(api_client, user):
    for _ in range(25):
        TaskFactory(owner=user)
        ConversationFactory(owner=user)

    assert len(api_client.get("/api/v1/tasks/").json()["results"]) == 20
    assert len(api_client.get("/api/v1/conversations/").json()["results"]) == 20
