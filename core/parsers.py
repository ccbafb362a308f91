"""The one request-body parser of the API: JSON, strictly.

orjson rejects what the database cannot store or Python cannot handle safely:
NaN and Infinity, unpaired surrogates, and nesting deeper than 1024 levels (the
stock parser lets `RecursionError` through). NUL characters are rejected here too,
anywhere in the body: PostgreSQL stores no NUL in text or jsonb. So is nesting
deeper than MAX_DEPTH levels: a stored `tool_calls` value is rendered inside a
response (orjson writes at most 254 levels), so a deeper one, once stored, would
make every later read of its conversation a 500. The body is read with a size
bound, because DRF reads the stream itself and so bypasses Django's
DATA_UPLOAD_MAX_MEMORY_SIZE check.
"""

import orjson
from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from .errors import RequestTooLarge

# Request bodies nest a few levels (tool_calls: a list of calls with arguments);
# 64 leaves room for any real one and for the levels a response wraps around it.
MAX_DEPTH = 64


def json_problem(data):
    """Why `data` cannot be accepted (a NUL, nested too deep), or None."""
    stack = [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "JSON strings must not contain NUL characters (\\u0000)."
        elif isinstance(item, (dict, list)):
            if depth > MAX_DEPTH:
                return f"JSON must not be nested more than {MAX_DEPTH} levels deep."
            if isinstance(item, dict):
                stack.extend((key, depth) for key in item)
                stack.extend((value, depth + 1) for value in item.values())
            else:
                stack.extend((value, depth + 1) for value in item)
    return None


def raw_json_problem(raw, data):
    """`json_problem(data)` for `data` parsed from the bytes `raw`, skipping the walk
    when `raw` shows it cannot find anything: JSON spells a NUL only as the escape
    `\\u0000`, and nesting needs an opening bracket per level."""
    if b"\\u0000" not in raw and raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return None
    return json_problem(data)


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
        problem = raw_json_problem(body, data)
        if problem:
            raise ParseError(problem)
        return data


class NDJSONParser(BaseParser):
    """Newline-delimited JSON (`application/x-ndjson`), for an account import.

    Returns the body as bytes, read with the bound MAX_IMPORT_BYTES (413 above it):
    the importer parses it line by line, so that an error names its line, and checks
    each line with `json_problem` as StrictJSONParser checks a body.
    """

    media_type = "application/x-ndjson"

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.MAX_IMPORT_BYTES
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise RequestTooLarge()
        return body
