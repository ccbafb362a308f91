"""message_append: numbering, counts, idempotency — also under concurrency."""

import uuid

import pytest

from chat import services
from chat.models import Conversation, Message
from testing.concurrency import run_at_once
from testing.factories import ConversationFactory, UserFactory, add_messages


@pytest.mark.django_db
def test_append_numbers_from_one_and_counts():
    conversation = ConversationFactory()

    messages = add_messages(conversation, 3)

    conversation.refresh_from_db()
    assert [m.seq for m in messages] == [1, 2, 3]
    assert conversation.message_count == 3
    assert conversation.updated_at == messages[-1].created_at


@pytest.mark.django_db
def test_updated_at_never_moves_backwards():
    from datetime import timedelta

    from django.utils import timezone

    conversation = ConversationFactory()
    future = timezone.now() + timedelta(hours=1)
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=future)

    add_messages(conversation, 1)

    conversation.refresh_from_db()
    assert conversation.updated_at == future


@pytest.mark.django_db
def test_append_to_another_users_conversation_is_not_found():
    conversation = ConversationFactory()

    with pytest.raises(services.ConversationNotFound):
        services.message_append(
            owner=UserFactory(), conversation_id=conversation.pk, role="user", content="x"
        )
    assert not Message.objects.exists()


@pytest.mark.django_db
def test_same_client_id_returns_stored_message():
    conversation = ConversationFactory()
    client_id = uuid.uuid4()
    kwargs = dict(
        owner=conversation.owner,
        conversation_id=conversation.pk,
        role="user",
        content="x",
        client_id=client_id,
    )

    first, created = services.message_append(**kwargs)
    again, created_again = services.message_append(**kwargs)

    assert (created, created_again) == (True, False)
    assert again.pk == first.pk
    with pytest.raises(services.ClientIdReused):
        services.message_append(**{**kwargs, "content": "y"})


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_ten_concurrent_appends_get_seq_one_to_n():
    conversation = ConversationFactory()
    add_messages(conversation, 2)

    def append(index):
        return services.message_append(
            owner=conversation.owner,
            conversation_id=conversation.pk,
            role="user",
            content=f"thread {index}",
        )[0].seq

    results, errors = run_at_once(10, append)

    assert errors == []
    assert sorted(results) == list(range(3, 13))
    conversation.refresh_from_db()
    assert conversation.message_count == 12
    seqs = list(Message.objects.filter(conversation=conversation).values_list("seq", flat=True))
    assert seqs == list(range(1, 13))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_ten_concurrent_retries_store_one_message():
    conversation = ConversationFactory()
    client_id = uuid.uuid4()

    def append(index):
        message, created = services.message_append(
            owner=conversation.owner,
            conversation_id=conversation.pk,
            role="user",
            content="only once",
            client_id=client_id,
        )
        return message.pk, created

    results, errors = run_at_once(10, append)

    assert errors == []
    assert len({pk for pk, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    conversation.refresh_from_db()
    assert conversation.message_count == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_append_racing_a_delete_is_not_found_not_integrity_error():
    conversation = ConversationFactory()
    owner = conversation.owner

    def act(index):
        if index == 0:
            services.conversation_delete(conversation=conversation)
            return "deleted"
        try:
            services.message_append(
                owner=owner, conversation_id=conversation.pk, role="user", content="x"
            )
            return "appended"
        except services.ConversationNotFound:
            return "not found"

    results, errors = run_at_once(6, act)

    assert errors == []
    assert "deleted" in results
    assert not Message.objects.filter(conversation_id=conversation.pk).exists()


@pytest.mark.postgres
def test_an_append_is_one_statement_on_postgresql(user, assert_max_queries):
    """The lock, the count and the insert: one round trip (savepoints aside, which only
    the test's own transaction causes)."""
    conversation = ConversationFactory(owner=user)
    with assert_max_queries(1):
        message, created = services.message_append(
            owner=user, conversation_id=conversation.pk, role="user", content="hi"
        )
    conversation.refresh_from_db()
    assert (created, message.seq, conversation.message_count) == (True, 1, 1)
    assert conversation.updated_at == message.created_at


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_retried_append_inside_a_transaction_needs_no_savepoint_and_keeps_it_usable(user):
    """A chat turn appends inside its own transactions: a client_id already stored
    must neither abort them nor cost a savepoint, and must not be counted."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    conversation = ConversationFactory(owner=user)
    client_id = uuid.uuid4()

    def append(content, client_id=client_id):
        return services.message_append(
            owner=user,
            conversation_id=conversation.pk,
            role="user",
            content=content,
            client_id=client_id,
        )

    with CaptureQueriesContext(connection) as captured, transaction.atomic():
        first, created = append("hi")
        again, created_again = append("hi")
        with pytest.raises(services.ClientIdReused):
            append("other")
        after, _ = append("next", client_id=None)

    assert not [q for q in captured.captured_queries if "SAVEPOINT" in q["sql"]]
    assert (created, created_again, again.pk) == (True, False, first.pk)
    conversation.refresh_from_db()
    assert (after.seq, conversation.message_count) == (2, 2)
    assert list(conversation.messages.order_by("seq").values_list("content", flat=True)) == [
        "hi",
        "next",
    ]
