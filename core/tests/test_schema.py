"""The OpenAPI schema at /api/schema/ is valid and follows the rules of core/schema.py.

Each test reads the schema the server serves, so an endpoint added later is held
to the same rules without a new test.
"""

import re

import pytest
from django.test import Client
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from core.errors import validation_body
from core.schema import (
    JSON_VALUE,
    JSON_VALUE_REF,
    NO_NUL_PATTERN,
    TYPING_KEYWORDS,
    _types,
    _varname,
    strings_without_nul,
)
from testing.factories import ConversationFactory

METHODS = ("get", "put", "post", "delete", "patch")
PUBLIC = {
    ("post", "/api/v1/auth/register/"),
    ("post", "/api/v1/auth/token/"),
    ("post", "/api/v1/auth/token/refresh/"),
    ("post", "/api/v1/auth/logout/"),
}
# Words of the implementation, not of the API: file names, internal functions, notes.
LEAKS = re.compile(
    r"\.md\b|\.py\b|bench|compiled|_data\b|schema only|serializer|chat\.turns|queryset",
    re.IGNORECASE,
)


@pytest.fixture(scope="module")
def schema():
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def operations(schema):
    for path, item in schema["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def test_schema_is_valid_openapi_3_1(schema):
    """3.1, for `propertyNames` (see core/schema.py's JSON_VALUE); 3.0's `nullable`
    means nothing in 3.1, where a nullable type lists "null"."""
    assert schema["openapi"] == "3.1.0"
    validate(schema)
    assert "nullable" not in _keys(schema)


def _keys(node):
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from _keys(value)
    elif isinstance(node, list):
        for value in node:
            yield from _keys(value)


def request_body_validator(schema, name):
    """A JSON Schema 2020-12 validator for the component `name` of the served schema."""
    resource = Resource.from_contents(schema, default_specification=DRAFT202012)
    registry = Registry().with_resource("urn:api", resource)
    return Draft202012Validator({"$ref": f"urn:api#/components/schemas/{name}"}, registry=registry)


def test_every_400_is_the_one_validation_error(schema):
    for path, method, operation in operations(schema):
        body = operation["responses"]["400"]["content"]["application/json"]["schema"]
        assert body == {"$ref": "#/components/schemas/ValidationError"}, (method, path)
    error = schema["components"]["schemas"]["ValidationError"]
    assert error["properties"]["detail"] == {
        "type": "string",
        "description": "A problem with the request as a whole.",
    }
    assert error["additionalProperties"] == {"type": "array", "items": {"type": "string"}}


def test_public_operations_say_security_empty_and_others_need_a_token(schema):
    for path, method, operation in operations(schema):
        if (method, path) in PUBLIC:
            assert operation["security"] == [], (method, path)
        else:
            assert operation["security"] == [{"jwtAuth": []}], (method, path)


def test_orderings_name_their_values(schema):
    orderings = [
        parameter["schema"]
        for _path, _method, operation in operations(schema)
        for parameter in operation.get("parameters", [])
        if parameter["name"] == "ordering"
    ]
    assert orderings
    for ordering in orderings:
        assert ordering["x-enum-varnames"] == [_varname(value) for value in ordering["enum"]]
    assert _varname("-created_at") == "CREATED_AT_DESC"
    assert _varname("due_at") == "DUE_AT"


def test_fields_the_server_always_sends_are_required(schema):
    components = schema["components"]["schemas"]
    for name in ("Task", "Conversation", "Message", "ChatTurnResponse", "User", "Account"):
        assert sorted(components[name]["required"]) == sorted(components[name]["properties"])
    # Inputs keep their optional fields optional.
    assert components["TaskRequest"]["required"] == ["title"]


def test_tool_calls_are_typed(schema):
    components = schema["components"]["schemas"]
    call = components["ChatToolCall"]["properties"]
    assert call["arguments"] == {"$ref": "#/components/schemas/ToolArguments"}
    assert components["ToolArguments"]["type"] == "object"
    assert call["result"]["oneOf"] == [
        {"$ref": "#/components/schemas/ToolResult"},
        {"type": "null"},
    ]
    assert components["ToolResult"]["required"] == ["ok"]


def test_request_strings_say_they_refuse_nul(schema, api_client):
    components = schema["components"]["schemas"]
    assert components["TaskRequest"]["properties"]["title"]["pattern"] == NO_NUL_PATTERN
    assert components["MessageRequest"]["properties"]["content"]["pattern"] == NO_NUL_PATTERN
    assert components["ChatTurnRequest"]["properties"]["message"]["pattern"] == NO_NUL_PATTERN
    # ... and the server does refuse one, with the one 400 shape.
    response = api_client.post("/api/v1/tasks/", {"title": "a\x00b"}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["detail"]
    assert re.fullmatch(NO_NUL_PATTERN, "a\x00b") is None
    assert re.fullmatch(NO_NUL_PATTERN, "ab\u00e9\n") is not None


def _request_schemas(schema):
    """Every schema nested in a request body or a query parameter, `$ref`s followed once."""
    components = schema["components"]["schemas"]
    seen, stack = set(), []
    for _path, _method, operation in operations(schema):
        for media in operation.get("requestBody", {}).get("content", {}).values():
            stack.append(media["schema"])
        stack += [parameter["schema"] for parameter in operation.get("parameters", [])]
    while stack:
        node = stack.pop()
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            if name not in seen:
                seen.add(name)
                stack.append(components[name])
            continue
        yield node
        stack += list(node.get("properties", {}).values())
        stack += [
            node[key]
            for key in ("items", "additionalProperties")
            if isinstance(node.get(key), dict)
        ]
        for key in ("oneOf", "anyOf", "allOf"):
            stack += node.get(key, [])


def test_nothing_a_client_sends_leaves_room_for_a_nul(schema):
    """Every request string, and every key of an open object, carries the pattern;
    a free-form value is the JsonValue component, which carries it at every depth."""
    for node in _request_schemas(schema):
        types = _types(node)
        if not any(key in node for key in TYPING_KEYWORDS):
            assert node.get("pattern") == NO_NUL_PATTERN, node
            assert node["propertyNames"] == {"pattern": NO_NUL_PATTERN}, node
        if "string" in types:
            assert {"pattern", "format", "enum"} & set(node), node
        if "object" in types and node.get("additionalProperties") is not False:
            assert node["propertyNames"] == {"pattern": NO_NUL_PATTERN}, node


def test_an_open_object_a_later_endpoint_takes_gets_the_same_rule():
    """The hook, on a request body it has not seen yet: an object open to any key
    (a dict field) and a free-form value both end up NUL-free at every depth."""
    result = {
        "paths": {
            "/api/v1/things/": {
                "post": {
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "settings": {"type": ["object", "null"]},
                                        "payload": {"description": "Anything."},
                                    },
                                    "additionalProperties": False,
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    strings_without_nul(result, None, None, True)
    properties = result["paths"]["/api/v1/things/"]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]["properties"]
    assert properties["settings"] == {
        "type": ["object", "null"],
        "propertyNames": {"pattern": NO_NUL_PATTERN},
        "additionalProperties": JSON_VALUE_REF,
    }
    assert properties["payload"] == {"description": "Anything.", **JSON_VALUE_REF}
    # JsonValue itself is left as it is (typeless on purpose), not made a ref to itself.
    assert result["components"]["schemas"]["JsonValue"] == JSON_VALUE


@pytest.mark.parametrize(
    ("tool_calls", "accepted"),
    [
        ([{"id": "c1", "args": {"nested": [1, 2.5, True, None, {"k": "v\u00e9"}]}}], True),
        ([], True),
        (None, True),
        (["a\x00b"], False),
        ([{"id": "c1", "args": {"nested": ["ok", {"k": "a\x00"}]}}], False),
        ([{"id": "c1", "args": {"ke\x00y": 1}}], False),
        ([{"\x00": None}], False),
        ({"not": "an array"}, False),
    ],
)
def test_message_tool_calls_schema_says_what_the_server_accepts(
    schema, api_client, user, tool_calls, accepted
):
    """A NUL nested anywhere in `tool_calls`, in a key or a string, is refused by the
    server and invalid by the schema; anything else JSON is valid and accepted."""
    conversation = ConversationFactory(owner=user)
    body = {"role": "assistant", "content": "Done.", "tool_calls": tool_calls}
    assert request_body_validator(schema, "MessageRequest").is_valid(body) is accepted
    response = api_client.post(
        f"/api/v1/conversations/{conversation.pk}/messages/", body, format="json"
    )
    assert response.status_code == (201 if accepted else 400), response.json()
    if accepted:
        assert response.json()["tool_calls"] == tool_calls


def test_path_parameters_are_named_alike(schema):
    """`{id}` names the object of the collection before it, an integer, everywhere;
    a chat turn is named by its `{client_id}`, a UUID."""
    for path, method, operation in operations(schema):
        for parameter in operation.get("parameters", []):
            if parameter["in"] != "path":
                continue
            assert "{" + parameter["name"] + "}" in path
            if parameter["name"] == "client_id":
                assert parameter["schema"]["format"] == "uuid", (method, path)
            else:
                assert parameter["name"] == "id", (method, path)
                assert parameter["schema"]["type"] == "integer", (method, path)


def _descriptions(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("description", "summary") and isinstance(value, str):
                yield value
            else:
                yield from _descriptions(value)
    elif isinstance(node, list):
        for value in node:
            yield from _descriptions(value)


def test_descriptions_describe_the_api_not_the_implementation(schema):
    leaks = [text for text in _descriptions(schema) if LEAKS.search(text)]
    assert leaks == []
    for path, method, operation in operations(schema):
        assert operation.get("description"), (method, path)


@pytest.mark.parametrize(
    ("drf_body", "body"),
    [
        ({"title": ["Too long."]}, {"title": ["Too long."]}),
        (["A NUL in ?search=."], {"detail": "A NUL in ?search=."}),
        ({"detail": ["One.", "Two."]}, {"detail": "One. Two."}),
        ({"tags": {0: ["Not a valid string."]}}, {"tags": ["0: Not a valid string."]}),
        ({"calls": [{}, {"name": ["Required."]}]}, {"calls": ["name: Required."]}),
    ],
)
def test_400_bodies_take_the_validation_error_shape(drf_body, body):
    assert validation_body(drf_body) == body
