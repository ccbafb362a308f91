"""Compiled reads (core.compiled): the queryset's answer, compiled once.

A compiled query must return exactly what evaluating its queryset with the values
written in as literals returns (instances or named tuples, converters applied, so
datetimes come back aware and in UTC on SQLite as on PostgreSQL), compile its SQL
once per thread and connection, and, through the API, serve every owner from one
compiled page query while showing each only their own rows.
"""

import datetime
import functools
import json
import threading
import uuid

import pytest
from django.db import connections
from django.db.models import Count, IntegerField, TextField
from django.db.models.functions import Cast
from django.db.models.sql.compiler import SQLCompiler

from chat.models import Conversation, Message
from chat.selectors import CONVERSATION_FIELDS
from chat.selectors import conversation_page_rows as conversation_rows
from chat.selectors import message_page_rows as message_rows
from core import compiled
from core.compiled import CompiledQueries, CompiledQuery, Param
from core.pagination import KeysetPagination
from tasks.models import Task
from tasks.selectors import SORT_KEYS, TASK_FIELDS
from tasks.selectors import task_page_rows as task_rows
from testing.factories import ConversationFactory, TaskFactory, UserFactory, add_messages

TASK_ROW_FIELDS = (*TASK_FIELDS, *SORT_KEYS)

pytestmark = pytest.mark.django_db

UTC = datetime.UTC
START = datetime.datetime(2024, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)
PLUS_0530 = datetime.timezone(datetime.timedelta(hours=5, minutes=30))
OWNER = Param("owner_id", Task._meta.get_field("owner"))
SINCE = Param("since", Task._meta.get_field("created_at"))
AFTER_ID = Param("after_id", IntegerField())


def fields_of(instances):
    """Every concrete field's value of each instance (model `==` compares pks only)."""
    return [
        {field.attname: getattr(obj, field.attname) for field in obj._meta.concrete_fields}
        for obj in instances
    ]


def datetimes_in(rows):
    values = [value for row in rows for value in row if isinstance(value, datetime.datetime)]
    assert values, "no datetime to check"
    return values


@pytest.fixture
def tasks(user, other_user):
    """Five tasks of `user` an hour apart (microseconds kept), three of `other_user`."""
    mine = [TaskFactory(owner=user, completed=i % 2 == 0) for i in range(5)]
    theirs = [TaskFactory(owner=other_user) for _ in range(3)]
    for i, task in enumerate(mine + theirs):
        Task.objects.filter(pk=task.pk).update(
            created_at=START + datetime.timedelta(hours=i), updated_at=START
        )
    return mine, theirs


@pytest.fixture
def compilations(monkeypatch):
    """The model of every query compiled from now on."""
    made = []

    class Counted(compiled._Compiled):
        def __init__(self, queryset, connection):
            super().__init__(queryset, connection)
            made.append(queryset.model)

    monkeypatch.setattr(compiled, "_Compiled", Counted)
    return made


@pytest.mark.parametrize(
    "since",
    [
        START + datetime.timedelta(hours=1),
        (START + datetime.timedelta(hours=1)).astimezone(PLUS_0530),
        START + datetime.timedelta(hours=1, microseconds=1),
    ],
    ids=["utc", "plus_0530", "one_microsecond_later"],
)
def test_instances_equal_the_querysets_with_literal_values(tasks, user, since):
    """ForeignKey, DateTimeField and integer Params behave as the literals they stand for."""
    after_id = tasks[0][0].pk
    query = CompiledQuery(Task.objects.filter(owner=OWNER, created_at__gte=SINCE, pk__gt=AFTER_ID))
    expected = list(Task.objects.filter(owner=user.pk, created_at__gte=since, pk__gt=after_id))

    rows = query.all(owner_id=user.pk, since=since, after_id=after_id)

    assert expected, "the literal queryset should match some tasks"
    assert fields_of(rows) == fields_of(expected)
    assert all(type(row) is Task and not row._state.adding for row in rows)
    assert {row._state.db for row in rows} == {"default"}


def test_instances_datetimes_are_aware_utc(tasks, user):
    rows = CompiledQuery(Task.objects.filter(owner=OWNER)).all(owner_id=user.pk)

    stamps = [row.created_at for row in rows] + [row.updated_at for row in rows]
    assert len(stamps) == 10
    assert all(isinstance(stamp, datetime.datetime) for stamp in stamps)
    assert {stamp.tzinfo for stamp in stamps} == {UTC}
    assert sorted(row.created_at for row in rows)[0] == START


def test_compiled_instance_can_be_saved_like_a_fetched_one(tasks, user):
    task = CompiledQuery(Task.objects.filter(pk=AFTER_ID)).first(after_id=tasks[0][0].pk)

    task.title = "renamed"
    task.save(update_fields=["title"])

    assert Task.objects.get(pk=task.pk).title == "renamed"
    assert Task.objects.count() == 8


def test_task_rows_equal_the_querysets_named_tuples(tasks, user):
    expected = list(Task.objects.filter(owner=user).values_list(*TASK_ROW_FIELDS, named=True))

    rows = CompiledQuery(task_rows()).all(owner_id=user.pk)

    assert rows == expected
    assert [type(row)._fields for row in rows] == [TASK_ROW_FIELDS] * 5
    assert {stamp.tzinfo for stamp in datetimes_in(rows)} == {UTC}


def test_conversation_rows_equal_the_querysets_named_tuples(user, other_user):
    conversations = [ConversationFactory(owner=user) for _ in range(3)]
    ConversationFactory(owner=other_user)
    add_messages(conversations[1], 2)
    expected = list(
        Conversation.objects.filter(owner=user).values_list(*CONVERSATION_FIELDS, named=True)
    )

    rows = CompiledQuery(conversation_rows()).all(owner_id=user.pk, archived=False)

    assert rows == expected
    assert sorted(row.message_count for row in rows) == [0, 0, 2]
    assert {stamp.tzinfo for stamp in datetimes_in(rows)} == {UTC}


@pytest.mark.parametrize("after", [None, 0, 2])
def test_message_rows_equal_the_querysets_named_tuples(user, after):
    """UUID columns pass through the same converters as the ORM's; tool calls come as
    their stored JSON text."""
    conversation = ConversationFactory(owner=user)
    messages = add_messages(conversation, 4)
    Message.objects.filter(pk=messages[-1].pk).update(
        tool_calls=[{"name": "add_task", "arguments": {"title": "x", "n": 1.5}}],
        client_id=uuid.UUID("12345678-1234-5678-1234-567812345678"),
    )
    literal = Message.objects.filter(conversation=conversation).annotate(
        tool_calls_json=Cast("tool_calls", TextField())
    )
    if after is not None:
        literal = literal.filter(seq__gt=after)
    expected = list(literal.values_list(*message_rows(after=False)._fields, named=True))

    query = CompiledQuery(message_rows(after=after is not None))
    rows = query.all(conversation_id=conversation.pk, after_seq=after)

    assert rows == expected
    assert [row.seq for row in rows] == list(range((after or 0) + 1, 5))
    assert json.loads(rows[-1].tool_calls_json) == [
        {"name": "add_task", "arguments": {"title": "x", "n": 1.5}}
    ]
    assert rows[-1].client_id == uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert {stamp.tzinfo for stamp in datetimes_in(rows)} == {UTC}


def test_first_is_the_querysets_first_row(tasks, user):
    query = CompiledQuery(Task.objects.filter(owner=OWNER).order_by("created_at", "id"))

    assert fields_of([query.first(owner_id=user.pk)]) == fields_of(
        [Task.objects.filter(owner=user).order_by("created_at", "id").first()]
    )


def test_first_is_none_when_no_row_matches(tasks, user):
    by_owner = CompiledQuery(Task.objects.filter(owner=OWNER))
    rows = CompiledQuery(task_rows())

    assert by_owner.first(owner_id=UserFactory().pk) is None
    assert by_owner.all(owner_id=10**12) == []
    assert rows.first(owner_id=10**12) is None


def test_sql_is_compiled_once_per_connection(tasks, user, other_user, monkeypatch):
    compiled_models = []
    as_sql = SQLCompiler.as_sql

    def spy(self, *args, **kwargs):
        compiled_models.append(self.query.model)
        return as_sql(self, *args, **kwargs)

    monkeypatch.setattr(SQLCompiler, "as_sql", spy)
    query = CompiledQuery(task_rows())

    first = query.all(owner_id=user.pk)
    compiles = compiled_models.count(Task)
    second = query.all(owner_id=other_user.pk)
    third = query.all(owner_id=user.pk)

    assert compiles >= 1
    assert compiled_models.count(Task) == compiles
    assert [row.id for row in first] == [row.id for row in third] != []
    assert {row.id for row in second} == {task.pk for task in tasks[1]}


def test_another_thread_compiles_for_its_own_connection(tasks, user, compilations):
    query = CompiledQuery(task_rows())
    query.all(owner_id=user.pk)
    seen = {}

    def in_another_thread():
        try:
            seen["connection"] = connections["default"]
            seen["sql"] = query.sql
            seen["again"] = query.sql
        finally:
            connections.close_all()

    thread = threading.Thread(target=in_another_thread)
    thread.start()
    thread.join()
    rows = query.all(owner_id=user.pk)

    assert seen["connection"] is not connections["default"]
    assert seen["sql"] == seen["again"] == query.sql
    assert compilations == [Task, Task]  # once here, once there; never again
    assert len(rows) == 5


def test_compiled_queries_returns_the_same_query_for_a_repeated_key():
    builds = []

    def build():
        builds.append(1)
        return task_rows()

    queries = CompiledQueries(size=4)
    first = queries.get(build)

    assert queries.get(build) is first
    assert queries.get(build, "-created_at", None, 20) is not first
    assert len(builds) == 2


def test_compiled_queries_keys_partials_by_function_and_arguments():
    queries = CompiledQueries(size=4)
    plain = queries.get(functools.partial(message_rows, after=False))

    assert queries.get(functools.partial(message_rows, after=False)) is plain
    assert queries.get(functools.partial(message_rows, after=True)) is not plain


def test_compiled_queries_drops_the_least_recently_used_past_its_size():
    builds = []

    def build(key):
        builds.append(key)
        return task_rows()

    def builder(key):
        return functools.partial(build, key)

    queries = CompiledQueries(size=2)
    a = queries.get(builder("a"))
    b = queries.get(builder("b"))
    assert queries.get(builder("a")) is a  # "a" is now the most recent
    queries.get(builder("c"))  # past the size: "b" goes

    assert queries.get(builder("a")) is a
    assert queries.get(builder("b")) is not b
    assert builds == ["a", "b", "c", "b"]


@pytest.fixture
def fresh_pages(monkeypatch):
    """The paginator's shared LRU, empty for this test."""
    pages = CompiledQueries()
    monkeypatch.setattr(KeysetPagination, "compiled_pages", pages)
    return pages


def ids_of(response):
    assert response.status_code == 200, response.content[:300]
    return [item["id"] for item in response.json()["results"]]


def test_one_compiled_task_page_serves_every_owner_with_their_own_rows(
    user, other_user, api_client, other_client, fresh_pages, compilations
):
    mine = [TaskFactory(owner=user) for _ in range(3)]
    theirs = [TaskFactory(owner=other_user) for _ in range(5)]

    my_page = api_client.get("/api/v1/tasks/?page_size=2")
    their_page = other_client.get("/api/v1/tasks/?page_size=2")
    assert compilations.count(Task) == 1  # the second owner reused the first's SQL
    my_next = api_client.get(my_page.json()["next"])
    their_next = other_client.get(their_page.json()["next"])

    assert ids_of(my_page) == [t.pk for t in reversed(mine)][:2]
    assert ids_of(their_page) == [t.pk for t in reversed(theirs)][:2]
    assert ids_of(my_next) == [mine[0].pk]
    assert ids_of(their_next) == [t.pk for t in reversed(theirs)][2:4]
    assert compilations.count(Task) == 2  # plus one for the cursor page's shape


def test_one_compiled_conversation_page_serves_every_owner_with_their_own_rows(
    user, other_user, api_client, other_client, fresh_pages, compilations
):
    mine = [ConversationFactory(owner=user) for _ in range(3)]
    theirs = [ConversationFactory(owner=other_user) for _ in range(4)]
    newest_first = {
        owner: list(
            Conversation.objects.filter(owner=owner).values_list("id", flat=True)
        )  # Meta.ordering is the API's default
        for owner in (user, other_user)
    }

    my_page = api_client.get("/api/v1/conversations/?page_size=2")
    their_page = other_client.get("/api/v1/conversations/?page_size=2")
    my_next = api_client.get(my_page.json()["next"])
    their_next = other_client.get(their_page.json()["next"])

    assert ids_of(my_page) + ids_of(my_next) == newest_first[user]
    assert ids_of(their_page) + ids_of(their_next) == newest_first[other_user]
    assert set(newest_first[user]) == {c.pk for c in mine}
    assert set(newest_first[other_user]) == {c.pk for c in theirs}
    assert compilations.count(Conversation) == 2  # first pages, then cursor pages


def test_shared_message_page_query_still_hides_another_owners_messages(
    user, other_user, api_client, other_client, fresh_pages
):
    conversation = ConversationFactory(owner=user)
    add_messages(conversation, 3)
    url = f"/api/v1/conversations/{conversation.pk}/messages/"

    mine = api_client.get(url)
    theirs = other_client.get(url)
    theirs_after = other_client.get(url + "?after_seq=1")

    assert [item["seq"] for item in mine.json()["results"]] == [1, 2, 3]
    assert theirs.status_code == 404
    assert theirs_after.status_code == 404
    assert "message 0" not in theirs.content.decode() + theirs_after.content.decode()


@pytest.mark.parametrize(
    "make",
    [
        lambda: Task.objects.filter(owner=OWNER).values("id", "title"),
        lambda: Task.objects.filter(owner=OWNER).values_list("id", "title"),
        lambda: Task.objects.filter(owner=OWNER).values_list("id", flat=True),
        lambda: Task.objects.filter(owner=OWNER).select_related("owner"),
        lambda: Task.objects.filter(owner=OWNER).annotate(n=Count("owner__tasks")),
        lambda: (
            Task.objects.filter(owner=OWNER)
            .values_list("title", named=True)
            .order_by("created_at")
            .distinct()
        ),
        lambda: Task.objects.filter(owner=OWNER).prefetch_related("owner"),
    ],
    ids=[
        "values_dicts",
        "values_list_tuples",
        "flat",
        "select_related",
        "annotated",
        "distinct_with_ordering",
        "prefetch",
    ],
)
def test_unsupported_querysets_are_a_value_error(tasks, user, make):
    query = CompiledQuery(make())

    with pytest.raises(ValueError, match="CompiledQuery"):
        query.all(owner_id=user.pk)


def test_query_that_cannot_match_returns_no_rows(tasks, user):
    query = CompiledQuery(Task.objects.filter(owner=OWNER, pk__in=[]))

    assert query.all(owner_id=user.pk) == []
    assert query.first(owner_id=user.pk) is None
