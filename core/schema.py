"""OpenAPI post-processing: the rules every operation's schema follows.

drf-spectacular describes operations from the views and serializers; these hooks
(SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"], in order) then make the schema say
what the server does, the same way for every endpoint, present and future, so
that clients generated from it (openapi-python-client, openapi-typescript) work
without a cast:

- `public_operations`: an operation that takes no token says `security: []`.
- `error_responses`: the error statuses of shared/API.md on each operation, a 400
  as the one `ValidationError` component, every other error as `Error`.
- `required_response_fields`: every property of an object the server answers is
  `required` (the server always sends all of them, `null` where nullable).
- `closed_request_objects`: a request body lists every property it may have.
- `strings_without_nul`: request strings say, with a `pattern`, that a NUL
  character is refused (PostgreSQL stores none; core/parsers.py refuses it), and
  so does a free-form JSON value a client sends (`JsonValue`), in its keys too.
- `enum_varnames`: `x-enum-varnames` on every string enum, so that `-created_at`
  is `CREATED_AT_DESC` in a generated client, not `VALUE_0`.
"""

import copy
import re

from rest_framework.serializers import BaseSerializer

ERROR = {
    "type": "object",
    "description": "An error answer: what went wrong, and what to do about it.",
    "properties": {
        "detail": {"type": "string", "description": "What went wrong, in a sentence."},
        "code": {
            "type": "string",
            "description": "A machine-readable reason, on 401 answers (`token_not_valid`, ...).",
        },
    },
    "required": ["detail"],
}
VALIDATION_ERROR = {
    "type": "object",
    "description": (
        "What was wrong with the request. Each field (or query parameter) that failed "
        'has the list of its messages (`{"title": ["This field is required."]}`); a '
        "problem with the request as a whole (malformed JSON, a NUL) is a `detail`."
    ),
    "properties": {
        "detail": {"type": "string", "description": "A problem with the request as a whole."},
    },
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
}

DESCRIPTIONS = {
    "400": "Validation failed, malformed JSON or a bad query parameter.",
    "401": "No, expired, tampered or wrong-type token; bad credentials.",
    "404": "No such object, or it belongs to another user.",
    "405": "Method not allowed on this path.",
    "409": "A chat turn with this client_id is still running.",
    "413": "The request body is larger than the server accepts.",
    "414": "The request line (path and query string) is longer than the server reads.",
    "415": "The body is not JSON.",
    "422": "A client_id reused with a different message.",
    "429": "Throttled; retry after the Retry-After header's seconds.",
    "502": "The agent failed.",
    "503": "The database (or the agent) is unavailable.",
}

# What a string in a request body or query must match: no NUL character.
NO_NUL_PATTERN = "^[^\\u0000]*$"
# Any JSON value with no NUL in a string or a key, at any depth: what the server
# accepts where a request takes free-form JSON (a message's `tool_calls`). A JSON
# Schema with no `type` allows every type, and each keyword applies only to its
# own: `pattern` to strings, `items` to arrays, `propertyNames` to an object's
# keys, and (through `if`/`then`) `additionalProperties` to an object's values.
# `propertyNames` needs OpenAPI 3.1 (JSON Schema 2020-12): in 3.0 nothing
# constrains the keys of a free-form object, so the schema called valid bodies the
# server refuses. The object rule sits under `then` because openapi-typescript
# reads a bare `additionalProperties` as "this is an object" (a generated client
# would then refuse strings and arrays), and openapi-python-client cannot generate
# a recursive `anyOf` of the six types; both read this schema as any value.
JSON_VALUE_REF = {"$ref": "#/components/schemas/JsonValue"}
JSON_VALUE = {
    "description": (
        "Any JSON value (object, array, string, number, boolean or null) with no NUL "
        "character in a string or an object's key, at any depth."
    ),
    "pattern": NO_NUL_PATTERN,
    "items": JSON_VALUE_REF,
    "propertyNames": {"pattern": NO_NUL_PATTERN},
    "if": {"type": "object"},
    "then": {"additionalProperties": JSON_VALUE_REF},
}

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _operations(result):
    for path, item in result.get("paths", {}).items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def _ref_name(schema):
    ref = schema.get("$ref", "") if isinstance(schema, dict) else ""
    return ref.rsplit("/", 1)[-1] if ref.startswith("#/components/schemas/") else None


def _walk(schema, components, visit, seen):
    """Call `visit` on `schema` and every schema nested in it, following `$ref`s once."""
    if not isinstance(schema, dict):
        return
    name = _ref_name(schema)
    if name is not None:
        if name not in seen and name in components:
            seen.add(name)
            _walk(components[name], components, visit, seen)
        return
    visit(schema)
    for nested in schema.get("properties", {}).values():
        _walk(nested, components, visit, seen)
    for key in ("items", "additionalProperties", "not"):
        _walk(schema.get(key), components, visit, seen)
    for key in ("oneOf", "anyOf", "allOf"):
        for nested in schema.get(key, []):
            _walk(nested, components, visit, seen)


def _content_schemas(holder):
    for media in (holder or {}).get("content", {}).values():
        if "schema" in media:
            yield media["schema"]


def public_operations(result, generator, request, public):
    """`security: []` on an operation that needs no token.

    drf-spectacular writes `[{}]` ("optionally anonymous") or nothing; a generator
    then demands an authenticated client. `[]` is the public form.
    """
    for _path, _method, operation in _operations(result):
        if not any(operation.get("security", [])):
            operation["security"] = []
    return result


def _error_response(status):
    name = "ValidationError" if status == "400" else "Error"
    response = {
        "description": DESCRIPTIONS[status],
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
    }
    if status == "429":
        response["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
    return response


def error_responses(result, generator, request, public):
    """The error answers of shared/API.md that each operation can give."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR
    schemas["ValidationError"] = VALIDATION_ERROR
    for path, method, operation in _operations(result):
        statuses = {"400", "405", "429", "503"}
        # Token-protected operations, and the auth endpoints (bad credentials or tokens).
        if operation.get("security") or path.startswith("/api/v1/auth/"):
            statuses.add("401")
        if "{" in path:
            statuses.add("404")
        if any(parameter.get("in") == "query" for parameter in operation.get("parameters", [])):
            statuses.add("414")
        if "requestBody" in operation or method in ("post", "put", "patch"):
            statuses |= {"413", "415"}
        if path.endswith("/messages/") and method == "post":
            statuses.add("422")
        if path.endswith("/chat/") and method == "post":
            statuses |= {"404", "409", "422", "502"}
        responses = operation.setdefault("responses", {})
        for status in sorted(statuses):
            responses.setdefault(status, _error_response(status))
        # A 400 an operation documents itself still has the one ValidationError shape.
        responses["400"]["content"] = _error_response("400")["content"]
    return result


def required_response_fields(result, generator, request, public):
    """Every property of a component in a success answer is `required`.

    The API always sends every field of what it answers (`null` where a field is
    nullable, `""` or `[]` where empty); a generator types a field that is not
    `required` as possibly absent, and its users would check for nothing. Inline
    schemas (a tool's result) keep the `required` they state.
    """
    components = result.get("components", {}).get("schemas", {})
    answered = set()
    for _path, _method, operation in _operations(result):
        for status, response in operation.get("responses", {}).items():
            if str(status).startswith("2"):
                for schema in _content_schemas(response):
                    _walk(schema, components, lambda schema: None, answered)
    for name in answered:
        if components[name].get("properties") and _from_serializer(generator, name):
            components[name]["required"] = sorted(components[name]["properties"])
    return result


def _from_serializer(generator, name):
    """True if drf-spectacular built the component `name` from a serializer (not from
    a JSON schema given with `extend_schema_field`, which states its own `required`)."""
    # The registry has no public lookup; its `_components` maps (name, type) to them.
    components = getattr(getattr(generator, "registry", None), "_components", {})
    component = components.get((name, "schemas"))
    return component is not None and isinstance(component.object, BaseSerializer)


def _types(schema):
    """The JSON types a schema names: `"string"` and `["string", "null"]` alike."""
    kind = schema.get("type", [])
    return [kind] if isinstance(kind, str) else list(kind)


# A schema with none of these keywords allows any JSON value (`{}`, or only a
# description): drf-spectacular's form of a free-form JSON field.
TYPING_KEYWORDS = ("type", "$ref", "oneOf", "anyOf", "allOf", "enum", "const", "not")


def strings_without_nul(result, generator, request, public):
    """No NUL in anything a client sends, said by the schema.

    The server refuses a NUL anywhere in a body or a query parameter (a 400),
    in a key as well as in a string; the schema says so, so that a client (or a
    fuzzer) that honours it never sends one:

    - a free-form string gets `pattern: NO_NUL_PATTERN` (strings with a format or
      a pattern of their own, and enums, have no room for a NUL already);
    - a free-form JSON value becomes the `JsonValue` component (no NUL in any
      string or key, at any depth);
    - an object open to keys it does not list gets `propertyNames` with the same
      pattern, and `JsonValue` as the schema of values it does not describe.

    Runs after `closed_request_objects`: a closed object names every key it takes.
    """
    components = result.setdefault("components", {}).setdefault("schemas", {})

    def json_value():
        components.setdefault("JsonValue", copy.deepcopy(JSON_VALUE))
        return dict(JSON_VALUE_REF)

    def visit(schema):
        if schema is components.get("JsonValue"):
            return  # Typeless on purpose, and already says it all.
        if not any(key in schema for key in TYPING_KEYWORDS):
            schema.update(json_value())
            return
        types = _types(schema)
        if "string" in types and not any(key in schema for key in ("format", "pattern", "enum")):
            schema["pattern"] = NO_NUL_PATTERN
        if "object" in types and schema.get("additionalProperties") is not False:
            schema.setdefault("propertyNames", {"pattern": NO_NUL_PATTERN})
            if schema.get("additionalProperties") in (None, True, {}):
                schema["additionalProperties"] = json_value()

    seen = set()
    for _path, _method, operation in _operations(result):
        for schema in _content_schemas(operation.get("requestBody")):
            _walk(schema, components, visit, seen)
        for parameter in operation.get("parameters", []):
            _walk(parameter.get("schema"), components, visit, set())
    return result


def closed_request_objects(result, generator, request, public):
    """`additionalProperties: false` on every object a client sends.

    The server reads only the properties a body's schema lists and ignores others,
    but it refuses a NUL anywhere in a body, in those others too: a schema open to
    more properties would call valid a body the server refuses. Closed, it also
    gives generated request models no catch-all `additional_properties`.
    """
    components = result.get("components", {}).get("schemas", {})

    def visit(schema):
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False

    seen = set()
    for _path, _method, operation in _operations(result):
        for schema in _content_schemas(operation.get("requestBody")):
            _walk(schema, components, visit, seen)
    return result


def _varname(value):
    """`-created_at` → `CREATED_AT_DESC`, `high` → `HIGH`: a name for an enum value."""
    name = re.sub(r"\W+", "_", value.lstrip("-")).strip("_").upper() or "EMPTY"
    if name[0].isdigit():
        name = f"VALUE_{name}"
    return f"{name}_DESC" if value.startswith("-") else name


def enum_varnames(result, generator, request, public):
    """`x-enum-varnames` on every enum of strings (components and parameters)."""

    def visit(node):
        if isinstance(node, dict):
            values = node.get("enum")
            if values and all(isinstance(value, str) for value in values):
                names = [_varname(value) for value in values]
                if len(set(names)) == len(names):
                    node["x-enum-varnames"] = names
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(result)
    return result
