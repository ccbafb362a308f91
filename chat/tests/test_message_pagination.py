"""Keyset pagination: walks see every object exactly once, also under inserts."""

import pytest

from testing.api import walk
from testing.factories import ConversationFactory, add_messages

pytestmark = pytest.mark.django_db


def test_walk_all_messages_of_a_conversation(api_client, user):
    conversation = ConversationFactory(owner=user)
    add_messages(conversation, 12)

    pages = walk(api_client, f"/api/v1/conversations/{conversation.pk}/messages/?page_size=5")

    assert [len(p) for p in pages] == [5, 5, 2]
