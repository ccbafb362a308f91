"""The one request-body parser of the API: JSON, strictly.

orjson rejects what the database cannot store or Python cannot handle safely:
NaN and Infinity, unpaired surrogates, and nesting deeper than 1024 levels (the
stock parser lets `RecursionError` through). NUL characters are rejected here too,
anywhere in the body: PostgreSQL stores no NUL in text or jsonb. The body is read
with a size bound, because DRF reads the stream itself and so bypasses Django's
DATA_UPLOAD_MAX_MEMORY_SIZE check.
"""

import orjson
from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from .exceptions import RequestTooLarge


def _contains_nul(data):
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class StrictJSONParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise RequestTooLarge()
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ParseError(f"JSON parse error: {exc}") from None
        if _contains_nul(data):
            raise ParseError("JSON strings must not contain NUL characters (\\u0000).")
        return data
