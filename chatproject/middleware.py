"""Request logging with a request id, and the early 413 for oversized bodies."""

import logging
import re
import time
import uuid

from django.conf import settings
from django.http import JsonResponse

logger = logging.getLogger("chatproject.requests")

REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestLogMiddleware:
    """One log line per request: method, path, status, duration, request id.

    The request id is the caller's X-Request-ID when it is a safe token, else a new
    one; it is returned in the same header. Query strings, headers and bodies are
    never logged, so tokens and passwords never reach the log.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        response = self._too_large(request) or self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        logger.info(
            "%s %s %s %.1fms request_id=%s",
            request.method,
            request.path,
            response.status_code,
            (time.perf_counter() - started) * 1000,
            request_id,
        )
        return response

    @staticmethod
    def _too_large(request):
        """Refuse a declared oversized API body before reading it."""
        if not request.path.startswith("/api/"):
            return None
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return JsonResponse({"detail": "Invalid Content-Length header."}, status=400)
        if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            return JsonResponse(
                {"detail": "The request body is larger than the server accepts."}, status=413
            )
        return None
