"""Search reads the index among many users' messages (PostgreSQL's plans).

`chat/search.py` has the layout: GIN on (owner_id, search_vector). Message search
reads that index, or walks the owner's newest messages (message_owner_created) when
the planner expects the word often; conversation search walks the owner's most
recent conversations along their own messages and reads the owner's matching
messages from the same index only past them. Plans are
read with EXPLAIN after ANALYZE, with no planner setting changed.
"""

import json

import pytest
from django.db import connection

from chat import selectors
from testing.factories import ConversationFactory, UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

COMMON = ("milk", "bread", "meeting", "project")


@pytest.fixture
def reader():
    """A reader with 300 conversations of 100 messages, three other users with 60:
    common words and a per-message serial word (`w123`), so a serial word is rare."""
    users = [UserFactory() for _ in range(4)]
    for user, conversations in zip(users, (300, 60, 60, 60), strict=True):
        for _ in range(conversations):
            ConversationFactory(owner=user)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO chat_message (conversation_id, owner_id, seq, role, content, created_at)"
            " SELECT c.id, c.owner_id, g, 'user',"
            " (%s::text[])[1 + (c.id + g) %% 4] || ' w' || (c.id * 1000 + g), now()"
            " FROM chat_conversation c, generate_series(1, 100) g",
            [list(COMMON)],
        )
        cursor.execute("UPDATE chat_conversation SET message_count = 100")
        cursor.execute("ANALYZE chat_message")
        cursor.execute("ANALYZE chat_conversation")
    return users[0]


def plan_of(queryset):
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        (plan,) = cursor.fetchone()
    return (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]


def indexes(plan):
    found = {plan.get("Index Name")}
    for child in plan.get("Plans", []):
        found |= indexes(child)
    return found - {None}


def scans_of_messages(plan):
    found = set()
    if plan.get("Relation Name") == "chat_message":
        found.add(plan["Node Type"])
    for child in plan.get("Plans", []):
        found |= scans_of_messages(child)
    return found


def rare_word(reader):
    return f"w{reader.conversations.order_by('pk').first().pk * 1000 + 7}"


@pytest.mark.parametrize("search", ["milk", "rare"])
def test_message_search_reads_an_owner_index_never_the_whole_table(reader, search):
    search = rare_word(reader) if search == "rare" else search

    plan = plan_of(
        selectors.message_search_rows(reader, search=search).order_by("-created_at", "-id")[:21]
    )

    assert indexes(plan) & {"message_owner_search", "message_owner_created"}, plan
    assert "Seq Scan" not in scans_of_messages(plan), plan


@pytest.mark.parametrize("search", ["milk", "rare"])
def test_conversation_search_walks_recent_conversations_then_reads_the_index(reader, search):
    search = rare_word(reader) if search == "rare" else search

    plan = plan_of(
        selectors.conversation_search_rows(reader, search=search, archived=False).order_by(
            "-updated_at", "-id"
        )[:21]
    )

    used = indexes(plan)
    assert "message_conversation_seq_unique" in used, plan  # the walk, one conversation each
    assert "message_owner_search" in used, plan  # past the walk, the owner's entries
    assert used & {"conversation_owner_activity", "conversation_owner_list"}, plan
    assert "Seq Scan" not in scans_of_messages(plan), plan
