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


__all__ = ["ConversationFactory", "Message", "TaskFactory", "UserFactory", "add_messages"]
