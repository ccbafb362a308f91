"""The user admin and the support group, over HTTP: a user's data one click away,
deleting a user deletes all of it, support staff read and change nothing."""

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from rest_framework_simplejwt.tokens import RefreshToken

from chat.models import ChatTurn, Conversation, Message
from chat.turns import chat_turn
from tasks.models import Task
from testing.factories import ConversationFactory, TaskFactory, UserFactory, bulk_messages

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client():
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def support_client():
    member = UserFactory(is_staff=True)
    member.groups.add(Group.objects.get(name="support"))
    client = Client()
    client.force_login(member)
    return client


@pytest.fixture
def everything(user):
    """`user` with tasks, a conversation made by chat turns, and a refresh token."""
    TaskFactory(owner=user)
    chat_turn(owner=user, message="add buy milk")
    RefreshToken.for_user(user)
    return user


def test_the_user_page_counts_and_links_their_data(staff_client, everything):
    user = everything

    html = staff_client.get(f"/admin/auth/user/{user.pk}/change/").content.decode()

    assert f'href="/admin/tasks/task/?owner__id__exact={user.pk}">2 tasks</a>' in html
    assert f'href="/admin/chat/conversation/?owner__id__exact={user.pk}">1 conversation</a>' in html
    assert f'href="/admin/chat/message/?owner__id__exact={user.pk}">4 messages</a>' in html
    assert "Not set (times are shown in UTC)" in html


@pytest.mark.parametrize("size", [30, 3000])
def test_the_user_page_queries_do_not_grow_with_their_data(
    staff_client, user, size, django_assert_max_num_queries
):
    bulk_messages(ConversationFactory(owner=user), size)
    Task.objects.bulk_create([Task(owner=user, title=f"t{i}") for i in range(size)])

    with django_assert_max_num_queries(11):
        response = staff_client.get(f"/admin/auth/user/{user.pk}/change/")

    assert f"{size} messages</a>" in response.content.decode()


def test_deleting_a_user_removes_everything_they_own(staff_client, everything, other_user):
    kept = TaskFactory(owner=other_user)
    url = f"/admin/auth/user/{everything.pk}/delete/"

    confirmation = staff_client.get(url)
    deleted = staff_client.post(url, {"post": "yes"})

    assert confirmation.status_code == 200
    assert "4 messages" in confirmation.content.decode()
    assert deleted.status_code == 302
    assert not User.objects.filter(pk=everything.pk).exists()
    for model in (Task, Conversation, Message, ChatTurn):
        assert not model.objects.filter(owner_id=everything.pk).exists()
    assert list(Task.objects.all()) == [kept]


def test_bulk_deleting_users_removes_everything_they_own(staff_client, everything):
    second = UserFactory()
    chat_turn(owner=second, message="add call mom")
    selected = {"action": "delete_selected", "_selected_action": [everything.pk, second.pk]}

    confirmation = staff_client.post("/admin/auth/user/", selected)
    deleted = staff_client.post("/admin/auth/user/", {**selected, "post": "yes"})

    assert "Chat turns: 2" in confirmation.content.decode()
    assert deleted.status_code == 302
    assert not User.objects.filter(pk__in=[everything.pk, second.pk]).exists()
    assert not Message.objects.exists()
    assert not ChatTurn.objects.exists()


def test_the_support_group_has_view_permissions_only():
    permissions = Group.objects.get(name="support").permissions
    codenames = set(permissions.values_list("codename", flat=True))

    assert codenames == {
        "view_task",
        "view_conversation",
        "view_message",
        "view_chatturn",
        "view_user",
    }


@pytest.mark.parametrize(
    "url",
    [
        "/admin/chat/conversation/{conversation}/change/",
        "/admin/tasks/task/{task}/change/",
        "/admin/auth/user/{user}/change/",
        "/admin/chat/message/{message}/change/",
    ],
)
def test_support_staff_read_without_edit_or_delete_controls(support_client, everything, url):
    url = url.format(
        conversation=Conversation.objects.get(owner=everything).pk,
        task=Task.objects.filter(owner=everything)[0].pk,
        user=everything.pk,
        message=Message.objects.filter(owner=everything)[0].pk,
    )

    page = support_client.get(url)
    html = page.content.decode()

    assert page.status_code == 200
    assert 'name="_save"' not in html
    assert "deletelink" not in html
    assert support_client.post(url, {"title": "changed"}).status_code == 403
    assert support_client.post(url.replace("change", "delete"), {"post": "yes"}).status_code == 403
    assert Conversation.objects.filter(owner=everything).exists()


@pytest.mark.parametrize(
    "url", ["/admin/chat/conversation/", "/admin/tasks/task/", "/admin/chat/message/"]
)
def test_support_staff_lists_have_no_actions_or_add(support_client, everything, url):
    html = support_client.get(url).content.decode()

    assert 'name="action"' not in html
    assert "addlink" not in html


def test_support_staff_can_use_the_owner_filter_box(support_client, everything):
    response = support_client.get(
        "/admin/autocomplete/",
        {
            "app_label": "chat",
            "model_name": "message",
            "field_name": "owner",
            "term": everything.username,
        },
    )

    assert response.status_code == 200
    assert response.json()["results"] == [{"id": str(everything.pk), "text": everything.username}]


def test_the_token_blacklist_is_not_on_the_admin_index(staff_client):
    html = staff_client.get("/admin/").content.decode()

    assert "token_blacklist" not in html
    assert "Outstanding tokens" not in html
    assert "/admin/chat/message/" in html
