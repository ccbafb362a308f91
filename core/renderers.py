"""JSON output through orjson: several times faster than the stock renderer.

Timestamps keep the API's `Z` suffix (OPT_UTC_Z), so views may return datetime
objects directly as well as DRF's already formatted strings.
"""

import orjson
from django.utils.functional import Promise
from rest_framework.renderers import BaseRenderer, JSONRenderer

OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS


def _default(value):
    if isinstance(value, Promise):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class FastJSONRenderer(JSONRenderer):
    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        return orjson.dumps(data, default=_default, option=OPTIONS)


class NDJSONRenderer(BaseRenderer):
    """`application/x-ndjson`, for a view that streams NDJSON itself: whatever else
    such a view answers (an error) is one JSON line."""

    media_type = "application/x-ndjson"
    format = "ndjson"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        return orjson.dumps(data, default=_default, option=OPTIONS) + b"\n"
