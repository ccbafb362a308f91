"""The database rejects bad messages and conversations, whatever the code path."""

import uuid

import pytest
from django.db import DataError, IntegrityError, transaction

from chat.models import Conversation, Message
from testing.factories import ConversationFactory, UserFactory, add_messages

pytestmark = pytest.mark.django_db

# Length limits fail as DataError on PostgreSQL (varchar), as IntegrityError on
# SQLite (the CHECK constraint): either way the row is refused.
REFUSED = (IntegrityError, DataError)


def raw_message(conversation, **fields):
    values = {
        "conversation": conversation,
        "owner_id": conversation.owner_id,
        "seq": 1,
        "role": "user",
        "content": "hi",
        **fields,
    }
    return Message(**values)


@pytest.mark.parametrize(
    "fields",
    [
        {"role": "robot"},
        {"content": ""},
        {"content": "x" * 10_001},
        {"seq": 0},
    ],
)
def test_bulk_create_of_bad_message_is_refused(fields):
    conversation = ConversationFactory()
    with pytest.raises(REFUSED), transaction.atomic():
        Message.objects.bulk_create([raw_message(conversation, **fields)])
    assert not Message.objects.exists()


def test_duplicate_seq_is_refused():
    conversation = ConversationFactory()
    add_messages(conversation, 1)
    with pytest.raises(REFUSED), transaction.atomic():
        Message.objects.bulk_create([raw_message(conversation, seq=1)])


def test_duplicate_client_id_is_refused_but_many_nulls_are_fine():
    conversation = ConversationFactory()
    client_id = uuid.uuid4()
    Message.objects.bulk_create(
        [
            raw_message(conversation, seq=1, client_id=client_id),
            raw_message(conversation, seq=2),
            raw_message(conversation, seq=3),
        ]
    )
    with pytest.raises(REFUSED), transaction.atomic():
        Message.objects.bulk_create([raw_message(conversation, seq=4, client_id=client_id)])


def test_update_to_bad_values_is_refused():
    conversation = ConversationFactory()
    add_messages(conversation, 1)
    for fields in ({"role": "nobody"}, {"content": ""}):
        with pytest.raises(REFUSED), transaction.atomic():
            Message.objects.update(**fields)
    with pytest.raises(REFUSED), transaction.atomic():
        Conversation.objects.update(title="t" * 256)
    with pytest.raises(REFUSED), transaction.atomic():
        Conversation.objects.update(message_count=-1)


def test_user_delete_cascades_to_conversations_and_messages():
    conversation = ConversationFactory()
    add_messages(conversation, 3)
    survivor = ConversationFactory()
    add_messages(survivor, 1)

    conversation.owner.delete()

    assert list(Conversation.objects.all()) == [survivor]
    assert Message.objects.count() == 1


def test_conversation_delete_cascades_to_messages():
    conversation = ConversationFactory()
    add_messages(conversation, 3)

    conversation.delete()

    assert not Message.objects.exists()


def test_message_owner_is_the_conversation_owner():
    owner = UserFactory()
    conversation = ConversationFactory(owner=owner)

    message = add_messages(conversation, 1)[0]

    assert message.owner_id == owner.pk
