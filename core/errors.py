"""Domain errors, and the one place that turns every failure into the API's JSON body.

Services never raise HTTP errors; each domain error carries the status the API
answers with, and `api_exception_handler` maps them here. The agent tools and the
MCP server turn them into tool results instead. Database errors caused by the
input become 400, an unreachable database 503; anything else is logged with its
traceback and answered with a JSON 500 that reveals nothing.
"""

import logging

from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, DataError, InterfaceError, OperationalError
from django.http import UnreadablePostError
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.response import Response


class DomainError(Exception):
    status_code = 400
    default_detail = "The request was not valid."

    def __init__(self, detail=None):
        self.detail = detail or self.default_detail
        super().__init__(self.detail)


class NotFound(DomainError):
    status_code = 404
    default_detail = "Not found."


class Conflict(DomainError):
    status_code = 409
    default_detail = "The request conflicts with the current state."


class Unprocessable(DomainError):
    status_code = 422
    default_detail = "The request cannot be applied."


class UpstreamFailed(DomainError):
    status_code = 502
    default_detail = "A service this request depends on failed."


class Unavailable(DomainError):
    status_code = 503
    default_detail = "A service this request depends on is unavailable; try again."


logger = logging.getLogger("core.errors")

DATABASE_UNAVAILABLE = "The database is unavailable right now; try again in a few seconds."


class RequestTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is larger than the server accepts."
    default_code = "request_too_large"


class ServiceUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = DATABASE_UNAVAILABLE
    default_code = "service_unavailable"


def is_connection_failure(exc):
    """True for errors that mean "no database", not "bad query"."""
    return isinstance(exc, (OperationalError, InterfaceError)) and not isinstance(exc, DataError)


def api_exception_handler(exc, context):
    # Imported here: rest_framework.views loads the parser and renderer settings,
    # and the parser imports this module.
    from rest_framework.views import exception_handler as drf_exception_handler

    if isinstance(exc, DomainError):
        return Response({"detail": exc.detail}, status=exc.status_code)
    if isinstance(exc, RequestDataTooBig):
        exc = RequestTooLarge()
    elif isinstance(exc, UnreadablePostError):
        # The client stopped sending its body (gone, or slower than the server waits).
        return Response(
            {"detail": "The request body could not be read: it stopped arriving."},
            status=status.HTTP_400_BAD_REQUEST,
        )
    elif isinstance(exc, DataError):
        return Response(
            {"detail": "A value in the request cannot be stored (out of range or invalid)."},
            status=status.HTTP_400_BAD_REQUEST,
        )
    elif is_connection_failure(exc):
        logger.warning("database unavailable: %s", exc)
        return Response(
            {"detail": DATABASE_UNAVAILABLE},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "5"},
        )
    response = drf_exception_handler(exc, context)
    if response is None:
        if isinstance(exc, DatabaseError):
            logger.error("database error", exc_info=exc)
        else:
            logger.error("unhandled error", exc_info=exc)
        return Response(
            {"detail": "Internal server error."},
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    if response.status_code == status.HTTP_400_BAD_REQUEST:
        response.data = validation_body(response.data)
    if response.status_code == status.HTTP_401_UNAUTHORIZED and isinstance(response.data, dict):
        response.data.setdefault("code", _code_of(exc))
        response.data.pop("messages", None)
    return response


def validation_body(data):
    """A 400's body in the one shape the schema gives it (`ValidationError`):
    `{"detail": "..."}` and/or `{"field": ["message", ...], ...}`.

    DRF answers other shapes too: a bare list (a ValidationError raised with one, as
    SearchFilter does for a NUL in ?search=), nested errors of a list or a nested
    serializer (`{"tags": {"0": [...]}}`): their messages join their field's list,
    prefixed with where they apply (`"0: ..."`).
    """
    if not isinstance(data, dict):
        return {"detail": " ".join(_messages(data))}
    body = {}
    for field, errors in data.items():
        messages = list(_messages(errors))
        body[str(field)] = " ".join(messages) if field == "detail" else messages
    return body


def _messages(errors, prefix=""):
    if isinstance(errors, dict):
        for key, value in errors.items():
            yield from _messages(value, f"{prefix}{key}: ")
    elif isinstance(errors, (list, tuple)):
        for value in errors:
            yield from _messages(value, prefix)
    else:
        yield f"{prefix}{errors}"


def _code_of(exc):
    codes = exc.get_codes() if isinstance(exc, APIException) else None
    return codes if isinstance(codes, str) else "not_authenticated"
