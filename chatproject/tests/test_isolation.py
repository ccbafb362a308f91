"""Isolation between users, generated from the OpenAPI schema at /api/schema/.

For every operation in the schema that names an object (an id in its path, or an
`*_id` field in its body), user B sends a valid request for user A's object and
gets a 404 with nothing of A's in it, and A's data is exactly as before. The same
request from A then succeeds, so the 404 is about ownership, not a bad request.
Every list B can read holds nothing of A's. A new endpoint is covered by the next
run without a new test; an endpoint whose ids this file cannot map fails loudly.
"""

import re
import uuid

import orjson
import pytest
from django.test import Client
from django.test.utils import override_settings

from chat import turns
from chat.models import ChatTurn, Conversation, Message, TurnEvent
from conftest import client_for
from tasks.models import Task
from testing.factories import ConversationFactory, TaskFactory, UserFactory, add_messages

SCHEMA_URL = "/api/schema/"
METHODS = ("get", "put", "patch", "post", "delete")
SECRET = "A-SECRET-7f3c"  # in every text of A's; must never reach B


def load_schema():
    with override_settings(ALLOWED_HOSTS=["testserver"]):
        response = Client().get(SCHEMA_URL, {"format": "json"})
    assert response.status_code == 200, response.content[:300]
    return orjson.loads(response.content)


SCHEMA = load_schema()


def operations(predicate):
    found = []
    for path, item in SCHEMA["paths"].items():
        for method in METHODS:
            if method in item and predicate(method, path, item[method]):
                found.append(pytest.param(method, path, id=f"{method.upper()} {path}"))
    return found


def resolve(schema):
    while isinstance(schema, dict) and "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = SCHEMA["components"]["schemas"][name]
    return schema


def request_schema(operation):
    content = operation.get("requestBody", {}).get("content", {})
    media = content.get("application/json")
    return resolve(media["schema"]) if media else None


def body_id_fields(operation):
    schema = request_schema(operation) or {}
    return [
        name
        for name in schema.get("properties", {})
        if name.endswith("_id") and name != "client_id"
    ]


def names_an_object(method, path, operation):
    return "{" in path or bool(body_id_fields(operation))


def sample(schema, name=""):
    """A small valid value for a JSON schema (what a well-behaved client sends)."""
    schema = resolve(schema)
    if "enum" in schema:
        return schema["enum"][0]
    if "oneOf" in schema or "anyOf" in schema:
        return sample((schema.get("oneOf") or schema.get("anyOf"))[0], name)
    if "allOf" in schema:
        return sample(schema["allOf"][0], name)
    # OpenAPI 3.1: a nullable type is a list, `["string", "null"]`.
    kinds = schema.get("type")
    kinds = [kinds] if isinstance(kinds, str) else list(kinds or [])
    nullable = "null" in kinds
    kind = next((kind for kind in kinds if kind != "null"), None)
    if kind == "object" or "properties" in schema:
        return {
            key: sample(value, key)
            for key, value in schema.get("properties", {}).items()
            if not resolve(value).get("readOnly")
        }
    if kind == "array":
        return []
    if kind == "boolean":
        return True
    if kind in ("integer", "number"):
        return max(schema.get("minimum", 1), 1)
    if kind == "string":
        if schema.get("format") == "uuid":
            return str(uuid.uuid4())
        if schema.get("format") == "email":
            return "probe@example.com"
        if schema.get("format") == "date-time":
            return "2030-01-01T00:00:00Z"
        return "isolation probe"[: schema.get("maxLength", 100)]
    if name == "tool_calls" or nullable:
        return None
    return "isolation probe"


def collection_of(path, parameter):
    """The collection a path parameter indexes: `/conversations/{id}/messages/`
    gives conversations."""
    segments = path.strip("/").split("/")
    position = segments.index("{" + parameter + "}")
    return segments[position - 1]


def collection_of_field(field):
    """`conversation_id` → conversations."""
    return field.removesuffix("_id") + "s"


class World:
    """User A with one object of every kind (all with SECRET in their text), and user B."""

    def __init__(self):
        self.a = UserFactory(username=f"alice-{uuid.uuid4().hex[:8]}")
        self.b = UserFactory(username=f"bob-{uuid.uuid4().hex[:8]}")
        self.task = TaskFactory(owner=self.a, title=f"{SECRET} task", description=SECRET)
        self.conversation = ConversationFactory(owner=self.a, title=f"{SECRET} chat")
        self.messages = add_messages(self.conversation, 3)
        for message in self.messages:
            Message.objects.filter(pk=message.pk).update(content=f"{SECRET} {message.seq}")
        # B owns objects too, so B's lists are not trivially empty.
        TaskFactory(owner=self.b, title="bob's own task")
        add_messages(ConversationFactory(owner=self.b, title="bob's chat"), 1)
        outcome = turns.chat_turn(
            owner=self.a, message=f"{SECRET} turn", conversation_id=self.conversation.pk
        )
        self.turn = ChatTurn.objects.get(user_message=outcome.user_message)
        self.ids = {
            "tasks": self.task.pk,
            "conversations": self.conversation.pk,
            "messages": self.messages[0].pk,
            "turns": self.turn.client_id,
        }

    def id_for(self, collection, where):
        if collection not in self.ids:
            pytest.fail(
                f"{where}: no object of user A for collection {collection!r}. "
                "Add one to World in chatproject/tests/test_isolation.py."
            )
        return self.ids[collection]

    def snapshot(self):
        """Everything of A's, as stored."""
        return {
            "user": list(type(self.a).objects.filter(pk=self.a.pk).values()),
            "tasks": list(Task.objects.filter(owner=self.a).order_by("pk").values()),
            "conversations": list(
                Conversation.objects.filter(owner=self.a).order_by("pk").values()
            ),
            "messages": list(Message.objects.filter(owner=self.a).order_by("pk").values()),
            "turns": list(ChatTurn.objects.filter(owner=self.a).order_by("pk").values()),
            "events": list(TurnEvent.objects.filter(owner=self.a).order_by("pk").values()),
        }

    def build(self, method, path):
        operation = SCHEMA["paths"][path][method]
        url = path
        for parameter in re.findall(r"{(\w+)}", path):
            object_id = self.id_for(collection_of(path, parameter), f"{method.upper()} {path}")
            url = url.replace("{" + parameter + "}", str(object_id))
        body = None
        schema = request_schema(operation)
        if schema is not None:
            body = sample(schema)
            for field in body_id_fields(operation):
                body[field] = self.id_for(collection_of_field(field), f"{method.upper()} {path}")
        return url, body


def send(client, method, url, body):
    if body is None:
        return getattr(client, method)(url)
    return getattr(client, method)(url, body, format="json")


@pytest.fixture
def world(db):
    return World()


def test_schema_names_objects_to_check():
    """Guard: the generator finds the object operations (and so would find new ones)."""
    found = {param.id for param in operations(names_an_object)}
    for expected in (
        "GET /api/v1/tasks/{id}/",
        "DELETE /api/v1/conversations/{id}/",
        "POST /api/v1/conversations/{id}/messages/",
    ):
        assert expected in found, sorted(found)


@pytest.mark.parametrize(("method", "path"), operations(names_an_object))
def test_other_users_object_is_404_and_unchanged(world, method, path):
    url, body = world.build(method, path)
    before = world.snapshot()

    response = send(client_for(world.b), method, url, body)

    assert response.status_code == 404, (method, url, response.status_code, response.content)
    assert response["Content-Type"].startswith("application/json")
    assert set(response.json()) == {"detail"}
    assert SECRET.encode() not in response.content
    assert world.snapshot() == before

    # Control: the owner's identical request is not refused, so B's 404 was ownership.
    control = send(client_for(world.a), method, url, body)
    assert control.status_code < 400, (method, url, control.status_code, control.content)


@pytest.mark.parametrize(("method", "path"), operations(lambda m, p, o: "{" in p))
def test_missing_object_is_404_for_its_would_be_owner(world, method, path):
    url, body = world.build(method, path)
    for missing in (2**31 - 1, 2**63 - 1, 10**30):
        missing_url = re.sub(r"/\d+/", f"/{missing}/", url, count=1)
        missing_url = missing_url.replace(str(world.turn.client_id), str(uuid.uuid4()))
        response = send(client_for(world.a), method, missing_url, body)
        assert response.status_code == 404, (missing_url, response.status_code, response.content)


@pytest.mark.parametrize(
    ("method", "path"), operations(lambda m, p, o: m == "get" and "{" not in p)
)
def test_nothing_of_another_user_in_any_list(world, method, path):
    """Every read without an id (the lists, auth/me/) carries nothing of A's to B."""
    response = client_for(world.b).get(path)
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert response.status_code == 200, (path, body[:300])
    assert SECRET.encode() not in body
    if response.streaming:  # export/: NDJSON, checked above
        return
    collection = path.strip("/").split("/")[-1]
    if collection in world.ids and "results" in response.json():
        ids = {item.get("id") for item in response.json()["results"]}
        assert world.ids[collection] not in ids
