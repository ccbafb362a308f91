"""A message's and a chat turn's owner is its conversation's owner, held by the database.

Reads trust the copied owner (a message page proves the conversation is the
caller's from its first row; turns are found by owner and client id), so each of
those reads is tried here after the owner changes, and the database is asked to
store a message or turn whose owner differs from its conversation's.
"""

import uuid

import pytest
from django.db import IntegrityError, connection, transaction

from chat import services
from chat.models import ChatTurn, Conversation, Message
from conftest import client_for
from testing.factories import ConversationFactory, UserFactory, add_messages


def check_deferred_constraints():
    """Deferred foreign keys (PostgreSQL) are checked at commit: check them now."""
    connection.check_constraints()


@pytest.fixture
def old_owner(db):
    return UserFactory()


@pytest.fixture
def new_owner(db):
    return UserFactory()


@pytest.fixture
def chatted(old_owner):
    """A conversation of `old_owner` made by a chat turn, with a tool call and more messages."""
    client = client_for(old_owner)
    answer = client.post(
        "/api/v1/chat/",
        {"message": "add buy milk", "client_id": str(uuid.uuid4())},
        format="json",
    )
    assert answer.status_code == 200, answer.content
    conversation = Conversation.objects.get(pk=answer.json()["conversation_id"])
    add_messages(conversation, 3)
    conversation.refresh_from_db()
    return conversation, answer.json()


def reassign_through_the_orm(conversation, new_owner):
    Conversation.objects.filter(pk=conversation.pk).update(owner=new_owner)


def reassign_through_the_service(conversation, new_owner):
    services.conversation_transfer(conversation=conversation, new_owner=new_owner)


@pytest.mark.parametrize("reassign", [reassign_through_the_orm, reassign_through_the_service])
def test_new_owner_reads_everything_and_old_owner_gets_404(chatted, old_owner, new_owner, reassign):
    conversation, _ = chatted
    count = conversation.message_count
    reassign(conversation, new_owner)

    new, old = client_for(new_owner), client_for(old_owner)
    base = f"/api/v1/conversations/{conversation.pk}/"
    assert new.get(base).status_code == 200
    for ordering in ("seq", "-seq"):
        page = new.get(f"{base}messages/?ordering={ordering}&page_size=1000")
        assert page.status_code == 200
        assert len(page.json()["results"]) == count
    assert new.get(f"{base}messages/?after_seq=1").status_code == 200

    assert old.get(base).status_code == 404
    for query in ("", "?ordering=-seq", "?after_seq=1"):
        assert old.get(f"{base}messages/{query}").status_code == 404
    assert (
        old.post(f"{base}messages/", {"role": "user", "content": "x"}, format="json").status_code
        == 404
    )

    assert set(
        Message.objects.filter(conversation=conversation).values_list("owner", flat=True)
    ) == {new_owner.pk}
    assert set(
        ChatTurn.objects.filter(conversation=conversation).values_list("owner", flat=True)
    ) == {new_owner.pk}


def test_a_transferred_turn_is_replayed_to_its_new_owner_only(chatted, old_owner, new_owner):
    conversation, first = chatted
    client_id = first["user_message"]["client_id"]
    services.conversation_transfer(conversation=conversation, new_owner=new_owner)

    replay = client_for(new_owner).post(
        "/api/v1/chat/", {"message": "add buy milk", "client_id": client_id}, format="json"
    )
    assert replay.status_code == 200
    assert replay.json()["assistant_message"] == first["assistant_message"]

    # The old owner's same client id is no longer a turn of theirs, and the
    # conversation it names is not theirs: nothing of the new owner's is answered.
    stale = client_for(old_owner).post(
        "/api/v1/chat/",
        {"message": "add buy milk", "client_id": client_id, "conversation_id": conversation.pk},
        format="json",
    )
    assert stale.status_code == 404


def test_deleting_the_new_owners_account_takes_the_transferred_messages(chatted, new_owner):
    conversation, _ = chatted
    services.conversation_transfer(conversation=conversation, new_owner=new_owner)
    assert client_for(new_owner).delete("/api/v1/auth/me/").status_code == 204
    assert not Message.objects.filter(conversation_id=conversation.pk).exists()
    assert not ChatTurn.objects.filter(conversation_id=conversation.pk).exists()


def test_a_message_owned_by_someone_else_than_its_conversations_owner_cannot_be_stored(
    old_owner, new_owner
):
    conversation = ConversationFactory(owner=old_owner)
    with pytest.raises(IntegrityError), transaction.atomic():
        Message.objects.create(
            conversation=conversation, owner=new_owner, seq=1, role="user", content="sneaky"
        )
        check_deferred_constraints()
    assert not Message.objects.filter(conversation=conversation).exists()


def test_a_messages_owner_cannot_be_changed_alone(old_owner, new_owner):
    conversation = ConversationFactory(owner=old_owner)
    add_messages(conversation, 2)
    with pytest.raises(IntegrityError), transaction.atomic():
        Message.objects.filter(conversation=conversation).update(owner=new_owner)
        check_deferred_constraints()
    assert set(
        Message.objects.filter(conversation=conversation).values_list("owner", flat=True)
    ) == {old_owner.pk}


def test_a_message_cannot_be_moved_to_another_owners_conversation(old_owner, new_owner):
    mine = ConversationFactory(owner=old_owner)
    theirs = ConversationFactory(owner=new_owner)
    (message,) = add_messages(mine, 1)
    with pytest.raises(IntegrityError), transaction.atomic():
        Message.objects.filter(pk=message.pk).update(conversation=theirs, seq=1)
        check_deferred_constraints()
    message.refresh_from_db()
    assert message.conversation_id == mine.pk


def test_a_turns_owner_cannot_differ_from_its_conversations(chatted, new_owner):
    conversation, _ = chatted
    with pytest.raises(IntegrityError), transaction.atomic():
        ChatTurn.objects.filter(conversation=conversation).update(owner=new_owner)
        check_deferred_constraints()
    assert not ChatTurn.objects.filter(owner=new_owner).exists()


def test_a_message_of_a_conversation_that_does_not_exist_cannot_be_stored(old_owner):
    with pytest.raises(IntegrityError), transaction.atomic():
        Message.objects.create(
            conversation_id=2**31 - 1, owner=old_owner, seq=1, role="user", content="orphan"
        )
        check_deferred_constraints()
    assert not Message.objects.filter(owner=old_owner).exists()


@pytest.mark.postgres
def test_a_messages_one_foreign_key_is_the_composite_one(db):
    """Single-column keys on conversation_id and owner_id would only add a check and a
    row lock to every append (chat/migrations/0009)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = 'chat_message'::regclass AND contype = 'f'"
        )
        keys = cursor.fetchall()
    assert [name for name, _ in keys] == ["chat_message_conversation_owner_fk"]
    assert "(conversation_id, owner_id) REFERENCES chat_conversation(id, owner_id)" in keys[0][1]
