"""Request logging with a request id, the early 413 for oversized bodies, and JSON
for every error answer under /api/."""

import contextvars
import logging
import re
import time
import uuid

from django.conf import settings
from django.core.signals import request_finished
from django.http import JsonResponse
from django.utils.encoding import escape_uri_path

logger = logging.getLogger("chatproject.requests")

REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

# The id of the request this thread is serving, for log lines written while it
# runs (tracebacks, warnings, and Django's own "Internal Server Error" line, which
# comes after the middleware returns); "-" once the response is sent.
current_request_id = contextvars.ContextVar("current_request_id", default="-")


def _forget_request_id(**kwargs):
    current_request_id.set("-")


request_finished.connect(_forget_request_id, dispatch_uid="chatproject.forget_request_id")


class RequestIdFilter(logging.Filter):
    """Gives every log record a `request_id` attribute, for the log format."""

    def filter(self, record):
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id.get()
        return True


class RequestLogMiddleware:
    """One log line per request: method, path, status, duration, request id.

    The request id is the caller's X-Request-ID when it is a safe token, else a new
    one; it is returned in the same header. Only the path is logged, percent-encoded
    so that no client can write a line of its own into the log: query strings,
    headers and bodies never are, so tokens and passwords never reach the log.
    Keep this middleware first, so the line covers every other middleware's time.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        current_request_id.set(request_id)
        response = self._too_large(request) or self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        logger.info(
            "%s %s %s %.1fms request_id=%s",
            request.method,
            escape_uri_path(request.path),
            response.status_code,
            (time.perf_counter() - started) * 1000,
            request_id,
        )
        return response

    @staticmethod
    def _too_large(request):
        """Refuse a declared oversized API body before reading it (the limit is
        DATA_UPLOAD_MAX_MEMORY_SIZE, or the path's in REQUEST_BODY_LIMITS)."""
        if not request.path.startswith("/api/"):
            return None
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return JsonResponse({"detail": "Invalid Content-Length header."}, status=400)
        limits = getattr(settings, "REQUEST_BODY_LIMITS", {})
        if length > limits.get(request.path, settings.DATA_UPLOAD_MAX_MEMORY_SIZE):
            return JsonResponse(
                {"detail": "The request body is larger than the server accepts."}, status=413
            )
        return None


class ApiErrorsAsJsonMiddleware:
    """Under /api/, every error answer is JSON, whatever produced it.

    The API's views and handlers answer JSON; Django's own pages do not: with DEBUG
    on, the debug pages for a 400 (a Host header not in ALLOWED_HOSTS) or a 500, and
    in any mode a CSRF or permission 403 raised outside DRF. Such an answer becomes
    `{"detail": "Bad request."}` (its reason phrase, as handler400/404/500 word it)
    with the same status: API.md says no response under /api/ is ever HTML.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            request.path.startswith("/api/")
            and response.status_code >= 400
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            json_response = JsonResponse(
                {"detail": f"{response.reason_phrase.capitalize()}."}, status=response.status_code
            )
            for header in ("Retry-After", "Allow", "WWW-Authenticate"):
                if header in response:
                    json_response[header] = response[header]
            return json_response
        return response
