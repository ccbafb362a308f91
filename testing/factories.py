"""factory_boy factories for every model, shared by the apps' tests."""

import factory
from django.contrib.auth import get_user_model

from chat.models import Conversation, Message
from tasks.models import Task

DEFAULT_PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", DEFAULT_PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class TaskFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Task

    owner = factory.SubFactory(UserFactory)
    title = factory.Sequence(lambda n: f"Task {n}")
    description = ""


class ConversationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Conversation

    owner = factory.SubFactory(UserFactory)
    title = factory.Sequence(lambda n: f"Conversation {n}")


def add_messages(conversation, count, role="user"):
    """Append `count` messages through the service, as the API would."""
    from chat.services import message_append

    return [
        message_append(
            owner=conversation.owner,
            conversation_id=conversation.pk,
            role=role,
            content=f"message {i}",
        )[0]
        for i in range(count)
    ]


def bulk_messages(conversation, count):
    """Store `count` messages in one INSERT (for size tests: not how the app writes).

    Alternating user / assistant text, numbered on from the conversation's last seq,
    with `message_count` moved to match, as `message_append` would leave them.
    """
    start = conversation.message_count
    Message.objects.bulk_create(
        [
            Message(
                conversation_id=conversation.pk,
                owner_id=conversation.owner_id,
                seq=start + i,
                role="user" if i % 2 else "assistant",
                content=f"bulk message {start + i}",
            )
            for i in range(1, count + 1)
        ],
        batch_size=500,
    )
    conversation.message_count = start + count
    Conversation.objects.filter(pk=conversation.pk).update(message_count=start + count)
    return conversation


__all__ = [
    "ConversationFactory",
    "Message",
    "TaskFactory",
    "UserFactory",
    "add_messages",
    "bulk_messages",
]
