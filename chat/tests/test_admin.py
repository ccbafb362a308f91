"""The admin: staff read conversations as transcripts, with bounded queries."""

import pytest
from django.test import Client

from chat.admin import TRANSCRIPT_LIMIT
from testing.factories import ConversationFactory, TaskFactory, UserFactory, add_messages

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client():
    staff = UserFactory(is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    return client


def test_transcript_shows_messages_in_order(staff_client):
    conversation = ConversationFactory(title="Groceries")
    add_messages(conversation, 5)

    page = staff_client.get(f"/admin/chat/conversation/{conversation.pk}/change/")

    html = page.content.decode()
    assert page.status_code == 200
    positions = [html.index(f"message {i}<") for i in range(5)]
    assert positions == sorted(positions)


def test_long_transcript_is_capped_to_the_newest(staff_client):
    conversation = ConversationFactory()
    add_messages(conversation, TRANSCRIPT_LIMIT + 5)

    html = staff_client.get(f"/admin/chat/conversation/{conversation.pk}/change/").content.decode()

    assert f"Showing the newest {TRANSCRIPT_LIMIT} of {TRANSCRIPT_LIMIT + 5}" in html
    assert html.count('class="message"') == TRANSCRIPT_LIMIT
    assert "message 0<" not in html


@pytest.mark.parametrize(
    "url",
    [
        "/admin/chat/conversation/",
        "/admin/chat/conversation/?q=user",
        "/admin/chat/message/",
        "/admin/chat/message/?role__exact=user",
        "/admin/tasks/task/",
    ],
)
def test_changelists_make_no_query_per_row(staff_client, url, django_assert_max_num_queries):
    for _ in range(30):
        conversation = ConversationFactory()
        add_messages(conversation, 2)
        TaskFactory()

    with django_assert_max_num_queries(12):
        response = staff_client.get(url)

    assert response.status_code == 200


def test_messages_cannot_be_edited_in_the_admin(staff_client):
    conversation = ConversationFactory()
    message = add_messages(conversation, 1)[0]

    response = staff_client.post(
        f"/admin/chat/message/{message.pk}/change/", {"content": "rewritten"}
    )

    message.refresh_from_db()
    assert response.status_code == 403
    assert message.content == "message 0"


def test_non_staff_cannot_open_the_admin():
    client = Client()
    client.force_login(UserFactory())

    response = client.get("/admin/chat/conversation/")

    assert response.status_code == 302
