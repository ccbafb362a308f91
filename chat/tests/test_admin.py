"""The chat admin, over HTTP as staff: readable transcripts in bounded queries, a log
the admin cannot break, lists that can be filtered and followed."""

import re

import pytest
from django.test import Client

from chat.admin import TRANSCRIPT_LIMIT
from chat.models import ChatTurn, Conversation, Message
from chat.turns import chat_turn
from testing.factories import (
    ConversationFactory,
    TaskFactory,
    UserFactory,
    add_messages,
    bulk_messages,
)

pytestmark = pytest.mark.django_db

SIZES = [30, 3000]


@pytest.fixture
def staff_client():
    staff = UserFactory(is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def turns(user):
    """A conversation made by two chat turns with the rules agent: tool calls and results."""
    first = chat_turn(owner=user, message="add buy milk")
    chat_turn(owner=user, message="show my tasks", conversation_id=first.conversation_id)
    return Conversation.objects.get(pk=first.conversation_id)


def change_url(conversation):
    return f"/admin/chat/conversation/{conversation.pk}/change/"


def rows(html):
    return re.findall(r'<tr class="message role-(\w+)">(.*?)</tr>', html, re.S)


def test_transcript_shows_messages_in_order(staff_client):
    conversation = ConversationFactory(title="Groceries")
    add_messages(conversation, 5)

    page = staff_client.get(change_url(conversation))

    html = page.content.decode()
    assert page.status_code == 200
    positions = [html.index(f"message {i}<") for i in range(5)]
    assert positions == sorted(positions)


def test_transcript_shows_each_tool_call_with_its_arguments_and_result(staff_client, turns):
    html = staff_client.get(change_url(turns)).content.decode()

    roles = [role for role, _ in rows(html)]
    assert roles == ["user", "assistant", "tool", "assistant"] * 2
    assert "add_task(title=&quot;buy milk&quot;)" in html
    assert "list_tasks(" in html
    assert "Calling add_task." not in html
    # Each result pretty-printed (indented JSON) inside a collapsible <details>.
    results = re.findall(r'<details class="result".*?<pre>(.*?)</pre>', html, re.S)
    assert len(results) == 2
    assert "\n  &quot;task&quot;: {\n    &quot;id&quot;" in results[0]
    assert "&quot;title&quot;: &quot;buy milk&quot;" in results[1]


def test_transcript_rows_link_to_their_message_and_show_admin_dates(staff_client):
    conversation = ConversationFactory()
    message = add_messages(conversation, 1)[0]

    html = staff_client.get(change_url(conversation)).content.decode()

    (_, row), *_ = rows(html)
    assert f'href="/admin/chat/message/{message.pk}/change/"' in row
    # Django's DATE_FORMAT and TIME_FORMAT ("Dec. 2, 2026" "4:27 p.m."), never raw ISO.
    assert re.search(
        r'<span class="date">\w{3,4}\.? \d{1,2}, \d{4}</span> '
        r'<span class="time">(\d{1,2}(:\d\d)? [ap]\.m\.|noon|midnight)</span>',
        row,
    )
    assert message.created_at.isoformat()[:19] not in re.sub(r"<time [^>]*>", "", row)


def test_long_transcript_pages_back_to_its_first_message(staff_client):
    conversation = ConversationFactory()
    bulk_messages(conversation, TRANSCRIPT_LIMIT + 5)

    newest = staff_client.get(change_url(conversation)).content.decode()
    older_link = re.search(r'class="older" href="([^"#]+)', newest).group(1)
    oldest = staff_client.get(change_url(conversation) + older_link).content.decode()

    assert f"Messages 6–{TRANSCRIPT_LIMIT + 5} of {TRANSCRIPT_LIMIT + 5}" in newest
    assert len(rows(newest)) == TRANSCRIPT_LIMIT
    assert f"?conversation__id__exact={conversation.pk}" in newest
    assert f"Messages 1–5 of {TRANSCRIPT_LIMIT + 5}" in oldest
    assert "bulk message 1<" in oldest
    assert 'class="older"' not in oldest
    assert 'class="newer"' in oldest


@pytest.mark.parametrize("before", ["abc", "²", "9" * 30, "-1"])
def test_transcript_ignores_a_bad_page_parameter(staff_client, before):
    conversation = ConversationFactory()
    add_messages(conversation, 3)

    response = staff_client.get(change_url(conversation), {"before": before})

    assert response.status_code == 200
    assert len(rows(response.content.decode())) == 3


@pytest.mark.parametrize("size", SIZES)
def test_transcript_queries_do_not_grow_with_the_conversation(
    staff_client, size, django_assert_max_num_queries
):
    conversation = ConversationFactory()
    bulk_messages(conversation, size)

    with django_assert_max_num_queries(5):
        response = staff_client.get(change_url(conversation))

    assert len(rows(response.content.decode())) == min(size, TRANSCRIPT_LIMIT)


# --- The log cannot be broken ---------------------------------------------------


@pytest.mark.parametrize("model", ["message", "chatturn"])
@pytest.mark.parametrize("action", ["delete", "change"])
def test_log_rows_cannot_be_changed_or_deleted(staff_client, turns, model, action):
    row = Message.objects.filter(conversation=turns).first() if model == "message" else None
    row = row or ChatTurn.objects.filter(conversation=turns).first()
    url = f"/admin/chat/{model}/{row.pk}/{action}/"

    posted = staff_client.post(url, {"post": "yes", "content": "rewritten", "status": "failed"})

    assert posted.status_code == 403
    assert type(row).objects.filter(pk=row.pk).exists()
    if action == "delete":
        assert staff_client.get(url).status_code == 403
    else:
        assert staff_client.get(url).status_code == 200  # read-only view
    assert Message.objects.filter(conversation=turns).count() == turns.message_count


@pytest.mark.parametrize("model", ["message", "chatturn"])
def test_log_rows_cannot_be_bulk_deleted(staff_client, turns, model):
    rows_ = Message.objects.all() if model == "message" else ChatTurn.objects.all()
    before = rows_.count()

    listing = staff_client.get(f"/admin/chat/{model}/")
    posted = staff_client.post(
        f"/admin/chat/{model}/",
        {"action": "delete_selected", "_selected_action": [r.pk for r in rows_], "post": "yes"},
    )

    assert 'value="delete_selected"' not in listing.content.decode()
    assert posted.status_code == 200  # the list again: no such action here
    assert rows_.count() == before


def test_deleting_a_conversation_with_chat_turns_removes_it_all(staff_client, turns):
    url = f"/admin/chat/conversation/{turns.pk}/delete/"

    confirmation = staff_client.get(url)
    deleted = staff_client.post(url, {"post": "yes"})

    assert confirmation.status_code == 200
    assert "8 messages" in confirmation.content.decode()
    assert "2 chat turns" in confirmation.content.decode()
    assert deleted.status_code == 302
    assert not Conversation.objects.filter(pk=turns.pk).exists()
    assert not Message.objects.filter(conversation_id=turns.pk).exists()
    assert not ChatTurn.objects.filter(conversation_id=turns.pk).exists()


def test_bulk_deleting_conversations_goes_through_the_service(staff_client, turns, user):
    other = chat_turn(owner=user, message="add call mom").conversation_id
    kept = ConversationFactory()
    add_messages(kept, 2)
    selected = {"_selected_action": [turns.pk, other], "action": "delete_selected"}

    confirmation = staff_client.post("/admin/chat/conversation/", selected)
    deleted = staff_client.post("/admin/chat/conversation/", {**selected, "post": "yes"})

    assert confirmation.status_code == 200
    assert "Messages: 12" in confirmation.content.decode()
    assert deleted.status_code == 302
    assert list(Conversation.objects.values_list("pk", flat=True)) == [kept.pk]
    assert Message.objects.count() == 2
    assert not ChatTurn.objects.exists()


def test_the_owner_is_not_a_form_field_on_change(staff_client, other_user):
    conversation = ConversationFactory(title="Old")
    owner = conversation.owner

    page = staff_client.get(change_url(conversation))
    saved = staff_client.post(change_url(conversation), {"owner": other_user.pk, "title": "New"})

    conversation.refresh_from_db()
    assert "owner" not in page.context["adminform"].form.fields
    assert saved.status_code == 302
    assert (conversation.owner, conversation.title) == (owner, "New")


def test_saving_the_title_keeps_the_message_count(staff_client):
    conversation = ConversationFactory()
    page = staff_client.get(change_url(conversation))
    add_messages(conversation, 2)  # appended while the form was open

    staff_client.post(change_url(conversation), {"title": "Renamed"})

    conversation.refresh_from_db()
    assert page.status_code == 200
    assert (conversation.title, conversation.message_count) == ("Renamed", 2)


def test_a_bad_title_is_a_form_error(staff_client):
    conversation = ConversationFactory(title="Fine")

    response = staff_client.post(change_url(conversation), {"title": "bad\x00title"})

    conversation.refresh_from_db()
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["title"]
    assert conversation.title == "Fine"


def test_the_owner_is_chosen_when_adding(staff_client, user):
    page = staff_client.get("/admin/chat/conversation/add/")
    added = staff_client.post("/admin/chat/conversation/add/", {"owner": user.pk, "title": "Hi"})

    assert "owner" in page.context["adminform"].form.fields
    assert added.status_code == 302
    assert Conversation.objects.get(title="Hi").owner == user


def test_transfer_moves_conversations_with_their_messages_and_turns(staff_client, turns, user):
    new_owner = UserFactory()
    selected = {"_selected_action": [turns.pk], "action": "transfer_to_another_user"}

    form = staff_client.post("/admin/chat/conversation/", selected)
    moved = staff_client.post(
        "/admin/chat/conversation/", {**selected, "apply": "Transfer", "new_owner": new_owner.pk}
    )

    assert form.status_code == 200
    assert 'name="new_owner"' in form.content.decode()
    assert moved.status_code == 302
    assert Conversation.objects.get(pk=turns.pk).owner == new_owner
    assert set(Message.objects.filter(conversation=turns).values_list("owner", flat=True)) == {
        new_owner.pk
    }
    assert set(ChatTurn.objects.filter(conversation=turns).values_list("owner", flat=True)) == {
        new_owner.pk
    }


def test_transfer_without_a_new_owner_asks_again(staff_client, turns, user):
    response = staff_client.post(
        "/admin/chat/conversation/",
        {"_selected_action": [turns.pk], "action": "transfer_to_another_user", "apply": "1"},
    )

    assert response.status_code == 200
    assert response.context["form"].errors["new_owner"]
    assert Conversation.objects.get(pk=turns.pk).owner == user


# --- Lists ------------------------------------------------------------------------


def listed(response):
    return list(response.context["cl"].result_list)


def test_messages_are_listed_newest_first(staff_client):
    first, second = ConversationFactory(), ConversationFactory()
    add_messages(first, 2)
    add_messages(second, 2)

    shown = listed(staff_client.get("/admin/chat/message/"))

    assert [(m.conversation_id, m.seq) for m in shown] == [
        (second.pk, 2),
        (second.pk, 1),
        (first.pk, 2),
        (first.pk, 1),
    ]


def test_messages_filter_by_conversation_and_by_owner(staff_client):
    first, second = ConversationFactory(), ConversationFactory()
    third = ConversationFactory(owner=first.owner)
    for conversation in (first, second, third):
        add_messages(conversation, 2)

    by_conversation = staff_client.get(f"/admin/chat/message/?conversation__id__exact={first.pk}")
    by_owner = staff_client.get(f"/admin/chat/message/?owner__id__exact={first.owner_id}")

    assert {m.conversation_id for m in listed(by_conversation)} == {first.pk}
    assert len(listed(by_conversation)) == 2
    assert {m.conversation_id for m in listed(by_owner)} == {first.pk, third.pk}
    # The filter box shows who is chosen.
    assert f'<option value="{first.owner_id}" selected>' in by_owner.content.decode()


@pytest.mark.parametrize("url", ["/admin/chat/conversation/", "/admin/chat/chatturn/"])
def test_conversations_and_turns_filter_by_owner(staff_client, url, user, turns):
    ConversationFactory()

    shown = listed(staff_client.get(f"{url}?owner__id__exact={user.pk}"))

    assert shown
    assert {row.owner_id for row in shown} == {user.pk}


@pytest.mark.parametrize("value", ["abc", "²", "9" * 30, "-1", ""])
@pytest.mark.parametrize("parameter", ["owner__id__exact", "conversation__id__exact"])
def test_a_bad_filter_value_is_not_a_500(staff_client, parameter, value):
    response = staff_client.get("/admin/chat/message/", {parameter: value})

    assert response.status_code == 302
    assert response.url.endswith("?e=1")


def _fill(size):
    """`size` conversations with one message each, and `size` messages in one of them."""
    owner = UserFactory()
    Conversation.objects.bulk_create(
        [Conversation(owner=owner, title=f"c{i}") for i in range(size)], batch_size=500
    )
    bulk_messages(ConversationFactory(owner=owner), size)
    for _ in range(3):
        TaskFactory(owner=owner)
    return owner


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(
    "url",
    [
        "/admin/chat/conversation/",
        "/admin/chat/conversation/?q=c1",
        "/admin/chat/conversation/?owner__id__exact={owner}",
        "/admin/chat/message/",
        "/admin/chat/message/?role__exact=user",
        "/admin/chat/message/?owner__id__exact={owner}&conversation__id__exact={conversation}",
        "/admin/chat/chatturn/",
    ],
)
def test_changelists_stay_within_their_query_budget(
    staff_client, url, size, django_assert_max_num_queries
):
    owner = _fill(size)
    url = url.format(owner=owner.pk, conversation=Conversation.objects.order_by("-id")[0].pk)

    with django_assert_max_num_queries(8):
        response = staff_client.get(url)

    assert response.status_code == 200


def test_non_staff_cannot_open_the_admin():
    client = Client()
    client.force_login(UserFactory())

    response = client.get("/admin/chat/conversation/")

    assert response.status_code == 302


def test_the_filter_script_loads_after_the_admin_jquery(staff_client):
    html = staff_client.get("/admin/chat/message/").content.decode()

    scripts = re.findall(r'<script src="/static/([^"]+)"', html)
    assert scripts.index("admin/js/jquery.init.js") < scripts.index("core/autocomplete_filter.js")


def test_the_message_list_shows_calls_and_results(staff_client, turns):
    html = staff_client.get(f"/admin/chat/message/?conversation__id__exact={turns.pk}").content
    html = html.decode()

    assert "add_task(title=&quot;buy milk&quot;)" in html
    assert "add_task → {&quot;ok&quot;:true" in html
    assert "Calling add_task." not in html
