"""Retention: `manage.py purge` deletes idle conversations whole, in small batches."""

import io
import re
from datetime import timedelta

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from chat import services
from chat.models import ChatTurn, Conversation, Message, MessageFeedback, TurnEvent
from testing.concurrency import run_at_once
from testing.factories import ConversationFactory, UserFactory, add_messages


def idle(conversation, days):
    when = timezone.now() - timedelta(days=days)
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=when)
    return conversation


def purge(*args, **options):
    out = io.StringIO()
    call_command("purge", *args, stdout=out, **options)
    return out.getvalue()


@pytest.fixture
def conversations(db):
    """Old ones (of two users, with messages and a chat turn), and recent ones."""
    alice, bob = UserFactory(), UserFactory()
    old = [idle(ConversationFactory(owner=owner), 40) for owner in (alice, bob, alice)]
    add_messages(old[0], 3)
    add_messages(old[1], 2)
    for conversation in old[:2]:
        idle(conversation, 40)
    recent = [ConversationFactory(owner=alice), idle(ConversationFactory(owner=bob), 29)]
    add_messages(recent[0], 2)
    return old, recent


@pytest.mark.django_db
def test_old_conversations_go_whole_and_recent_ones_stay(conversations, settings):
    old, recent = conversations
    settings.RETENTION_DAYS = 30
    turn = ChatTurn.objects.create(
        owner=old[0].owner,
        conversation=old[0],
        key="00000000-0000-0000-0000-000000000001",
        user_message=old[0].messages.first(),
    )
    TurnEvent.objects.create(
        owner=turn.owner, turn=turn, seq=1, name=TurnEvent.Name.STARTED, data={}
    )
    services.feedback_set(message=old[0].messages.last(), kind="up")

    output = purge()

    assert set(Conversation.objects.values_list("pk", flat=True)) == {c.pk for c in recent}
    assert not Message.objects.filter(conversation_id__in=[c.pk for c in old]).exists()
    assert not ChatTurn.objects.exists()
    assert not TurnEvent.objects.exists()
    assert not MessageFeedback.objects.exists()
    assert Message.objects.filter(conversation=recent[0]).count() == 2
    assert "done, deleted 3 conversations and 5 messages with no activity for 30 days" in output


@pytest.mark.django_db
def test_small_batches_each_report_progress(conversations):
    output = purge("--days", "30", "--batch-size", "1", "--max-messages", "1")

    progress = [line for line in output.splitlines() if "so far" in line]
    assert progress[0].startswith("purge: deleted 1 conversations")
    assert len(progress) == 3
    assert Conversation.objects.count() == 2


@pytest.mark.django_db
def test_every_progress_line_names_the_longest_transaction_so_far(conversations):
    output = purge("--days", "30", "--batch-size", "1")

    lines = output.splitlines()
    assert len(lines) == 4
    assert all(re.search(r"; longest transaction \d+ ms\.?$", line) for line in lines)


@pytest.mark.django_db
def test_dry_run_counts_and_changes_nothing(conversations):
    before = (Conversation.objects.count(), Message.objects.count())

    output = purge("--days", "30", "--dry-run")

    assert (Conversation.objects.count(), Message.objects.count()) == before
    assert "would delete 3 conversations and 5 messages" in output
    assert "longest transaction" not in output


@pytest.mark.django_db
def test_without_retention_days_it_refuses(settings, conversations):
    settings.RETENTION_DAYS = None

    with pytest.raises(CommandError, match="RETENTION_DAYS"):
        purge()
    assert Conversation.objects.count() == 5


@pytest.mark.django_db
def test_a_conversation_active_again_since_it_was_listed_is_kept(conversations):
    old, _ = conversations
    listed = services.purge_candidates(idle_before=timezone.now() - timedelta(days=30))
    add_messages(old[0], 1)  # activity after the listing, before the delete

    done = services.conversations_purge(
        conversation_ids=[row.pk for row in listed],
        idle_before=timezone.now() - timedelta(days=30),
    )

    assert done == (2, 2)
    assert Conversation.objects.get(pk=old[0].pk).message_count == 4


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_append_racing_the_purge_is_kept_whole_or_deleted_whole():
    owner = UserFactory()
    racing = [idle(ConversationFactory(owner=owner), 40) for _ in range(12)]
    for conversation in racing:
        add_messages(conversation, 2)
        idle(conversation, 40)
    idle_before = timezone.now() - timedelta(days=30)
    appended = {}

    for conversation in racing:

        def race(index, conversation=conversation):
            if index == 0:
                try:
                    message, _ = services.message_append(
                        owner=owner, conversation_id=conversation.pk, role="user", content="hi"
                    )
                    appended[conversation.pk] = message.pk
                except services.ConversationNotFound:
                    appended[conversation.pk] = None
            else:
                services.conversations_purge(
                    conversation_ids=[conversation.pk], idle_before=idle_before
                )

        _, errors = run_at_once(2, race)
        assert errors == []

    for conversation in racing:
        stored = Conversation.objects.filter(pk=conversation.pk).first()
        messages = Message.objects.filter(conversation_id=conversation.pk).count()
        if appended[conversation.pk] is None:
            assert stored is None and messages == 0
        else:
            assert stored is not None and stored.message_count == messages == 3
    assert not Message.objects.exclude(conversation__in=Conversation.objects.all()).exists()


@pytest.mark.django_db(transaction=True)
def test_a_purge_outside_a_transaction_commits_its_batch_and_counts_it():
    old = idle(ConversationFactory(), 40)
    add_messages(old, 3)
    idle(old, 40)
    kept = ConversationFactory(owner=old.owner)

    done = services.conversations_purge(
        conversation_ids=[old.pk, kept.pk], idle_before=timezone.now() - timedelta(days=30)
    )

    assert done == (1, 3)
    assert list(Conversation.objects.values_list("pk", flat=True)) == [kept.pk]
    assert not Message.objects.filter(conversation_id=old.pk).exists()


@pytest.mark.django_db
def test_a_negative_pause_is_refused(conversations):
    with pytest.raises(CommandError, match="--pause"):
        purge("--days", "30", "--pause", "-1")

    assert Conversation.objects.count() == 5


@pytest.mark.django_db(transaction=True)
def test_a_purge_that_fails_outside_a_transaction_leaves_the_connection_usable():
    if connection.vendor != "postgresql":
        pytest.skip("the one-message purge is PostgreSQL's")
    old = idle(ConversationFactory(), 40)
    with psycopg.connect(**connection.get_connection_params()) as other:
        other.execute("SELECT 1 FROM chat_conversation WHERE id = %s FOR UPDATE", [old.pk])
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '50ms'")
        try:
            with pytest.raises(psycopg.errors.LockNotAvailable):
                services.conversations_purge(
                    conversation_ids=[old.pk], idle_before=timezone.now() - timedelta(days=30)
                )
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")

    assert Conversation.objects.filter(pk=old.pk).exists()
