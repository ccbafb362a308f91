"""OpenAPI post-processing: the error answers every operation can give.

drf-spectacular describes the success bodies from the serializers; this hook adds
the error statuses of shared/API.md to each operation, with their JSON bodies, so
that the schema is true to what the server answers.
"""

ERROR = {
    "type": "object",
    "properties": {"detail": {"type": "string"}, "code": {"type": "string"}},
    "required": ["detail"],
}
# A 400 names the fields that failed (`{"title": ["..."]}`) or carries a detail.
VALIDATION_ERROR = {
    "type": "object",
    "additionalProperties": True,
    "description": '`{"field": ["message", ...]}` or `{"detail": "..."}`',
}

DESCRIPTIONS = {
    "400": "Validation failed, malformed JSON or a bad query parameter.",
    "401": "No, expired, tampered or wrong-type token; bad credentials.",
    "404": "No such object, or it belongs to another user.",
    "405": "Method not allowed on this path.",
    "409": "A chat turn with this client_id is still running.",
    "413": "The request body is larger than the server accepts.",
    "415": "The body is not JSON.",
    "422": "A client_id reused with a different message.",
    "429": "Throttled; retry after the Retry-After header's seconds.",
    "502": "The agent failed.",
    "503": "The database (or the agent) is unavailable.",
}


def _error_response(status):
    schema = VALIDATION_ERROR if status == "400" else {"$ref": "#/components/schemas/Error"}
    response = {
        "description": DESCRIPTIONS[status],
        "content": {"application/json": {"schema": schema}},
    }
    if status == "429":
        response["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
    return response


def add_error_responses(result, generator, request, public):
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            statuses = {"400", "405", "429", "503"}
            # Token-protected operations, and the auth endpoints (bad credentials or tokens).
            if any(operation.get("security", [])) or path.startswith("/api/v1/auth/"):
                statuses.add("401")
            if "{" in path:
                statuses.add("404")
            if "requestBody" in operation or method in ("post", "put", "patch"):
                statuses |= {"413", "415"}
            if path.endswith("/messages/") and method == "post":
                statuses.add("422")
            if path.endswith("/chat/") and method == "post":
                statuses |= {"404", "409", "422", "502"}
            responses = operation.setdefault("responses", {})
            for status in sorted(statuses):
                responses.setdefault(status, _error_response(status))
    return result
