"""Keyset (cursor) pagination on (sort key, id) row values.

DRF's stock CursorPagination keys on one column and falls back to an OFFSET for
ties. Here a page is `WHERE (key, id) < (%s, %s) ORDER BY key DESC, id DESC
LIMIT n+1`, which a composite index answers directly: page 1,000 costs what page
1 costs, and there is no COUNT(*).

A view declares `keyset_orderings`, a mapping from the `?ordering=` values it
accepts to the tuple of fields it sorts by (all ascending or all descending, the
last one unique), and `default_keyset_ordering`.

Page queries are compiled by `core.compiled`: a view's list reads (`paginate`
with a selector) compile once per selector and page shape and run with each
request's owner and cursor as parameters.
"""

import base64

import orjson
from django.db.models import F, GeneratedField
from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan, TupleLessThan
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from .compiled import CompiledQueries, CompiledQuery, Param


def sort_field(model, name):
    """The field that reads and writes the sort key `name` (for a generated column,
    its output field: a non-null sort key the database computes, e.g. a rank)."""
    field = model._meta.get_field(name)
    return field.output_field if isinstance(field, GeneratedField) else field


class KeysetPagination(BasePagination):
    page_size = 20
    max_page_size = 100
    cursor_query_param = "cursor"
    page_size_query_param = "page_size"
    ordering_query_param = "ordering"
    # Compiled page queries of every view, by shape, ordering, direction, page size.
    compiled_pages = CompiledQueries()

    def paginate_queryset(self, queryset, request, view=None):
        """DRF's entry point: a page of any queryset (compiled for this request only)."""
        return self.paginate(
            request, view, model=queryset.model, build=lambda: queryset, values={}, reuse=False
        )

    def paginate(self, request, view, *, model, build, values, reuse=True):
        """A page of `build()`, a queryset of `model` whose `Param`s take `values`.

        With `reuse`, the compiled page query is kept and reused by every request
        with the same builder (a selector, or a `functools.partial` of one), ordering,
        direction and page size: `build` must then depend on nothing but its own
        arguments, every per-request value being a Param. A builder that closes over
        request data (a filtered queryset) needs `reuse=False`.
        """
        self.request = request
        self.base_url = request.build_absolute_uri()
        self.page_size = self.get_page_size(request, view)
        self.ordering_name, self.ordering = self.get_ordering(request, view)
        self.fields = [name.lstrip("-") for name in self.ordering]
        self.descending = self.ordering[0].startswith("-")
        cursor = self.decode_cursor(request, model)

        direction = cursor and cursor[0]
        scan_descending = self.descending != (direction == "p")

        def page_query():
            queryset = build()
            if cursor is not None:
                lookup = TupleLessThan if scan_descending else TupleGreaterThan
                key = Tuple(*(F(name) for name in self.fields))
                after = tuple(
                    Param(f"cursor_{name}", sort_field(model, name)) for name in self.fields
                )
                queryset = queryset.filter(lookup(key, after))
            order_by = [("-" if scan_descending else "") + name for name in self.fields]
            return queryset.order_by(*order_by)[: self.page_size + 1]

        if reuse:
            query = self.compiled_pages.get(
                build, self.ordering_name, direction, self.page_size, page_query=page_query
            )
        else:
            query = CompiledQuery(page_query())
        if cursor is not None:
            values = {
                **values,
                **{
                    f"cursor_{name}": value
                    for name, value in zip(self.fields, cursor[1], strict=True)
                },
            }
        rows = query.all(**values)
        backwards = direction == "p"
        has_more = len(rows) > self.page_size
        rows = rows[: self.page_size]
        if backwards:
            rows.reverse()
            self.has_next, self.has_previous = True, has_more
        else:
            self.has_next, self.has_previous = has_more, cursor is not None
        self.rows = rows
        return rows

    def get_page_size(self, request, view):
        page_size = getattr(view, "page_size", self.page_size)
        maximum = getattr(view, "max_page_size", self.max_page_size)
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return page_size
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if not 1 <= value <= maximum:
            raise ValidationError(
                {self.page_size_query_param: [f"Must be an integer from 1 to {maximum}."]}
            )
        return value

    def get_ordering(self, request, view):
        orderings = view.keyset_orderings
        name = request.query_params.get(self.ordering_query_param, view.default_keyset_ordering)
        if name not in orderings:
            raise ValidationError(
                {self.ordering_query_param: [f"Must be one of: {', '.join(orderings)}."]}
            )
        return name, orderings[name]

    def decode_cursor(self, request, model):
        raw = request.query_params.get(self.cursor_query_param)
        if raw is None:
            return None
        try:
            padded = raw + "=" * (-len(raw) % 4)
            direction, ordering_name, values = orjson.loads(base64.urlsafe_b64decode(padded))
            if direction not in ("n", "p") or ordering_name != self.ordering_name:
                raise ValueError
            if not isinstance(values, list) or len(values) != len(self.fields):
                raise ValueError
            key = tuple(
                sort_field(model, name).to_python(value)
                for name, value in zip(self.fields, values, strict=True)
            )
            if any(value is None for value in key):
                raise ValueError
        except Exception:  # any malformed cursor, whatever failed to decode
            raise ValidationError(
                {
                    self.cursor_query_param: [
                        "Invalid cursor: use the next or previous link as given."
                    ]
                }
            ) from None
        return direction, key

    def encode_cursor(self, direction, row):
        values = []
        for name in self.fields:
            value = getattr(row, name)
            values.append(value.isoformat() if hasattr(value, "isoformat") else value)
        payload = orjson.dumps([direction, self.ordering_name, values])
        return base64.urlsafe_b64encode(payload).decode().rstrip("=")

    def get_next_link(self):
        if not self.has_next or not self.rows:
            return None
        return replace_query_param(
            self.base_url, self.cursor_query_param, self.encode_cursor("n", self.rows[-1])
        )

    def get_previous_link(self):
        if not self.has_previous:
            return None
        if not self.rows:
            return remove_query_param(self.base_url, self.cursor_query_param)
        return replace_query_param(
            self.base_url, self.cursor_query_param, self.encode_cursor("p", self.rows[0])
        )

    def get_paginated_response(self, data):
        return Response(
            {"next": self.get_next_link(), "previous": self.get_previous_link(), "results": data}
        )

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["next", "previous", "results"],
            "properties": {
                "next": {"type": ["string", "null"], "format": "uri"},
                "previous": {"type": ["string", "null"], "format": "uri"},
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view):
        maximum = getattr(view, "max_page_size", self.max_page_size)
        default = getattr(view, "page_size", self.page_size)
        return [
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "Opaque cursor from a `next` or `previous` link.",
                "schema": {"type": "string"},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": f"Results per page, 1 to {maximum} (default {default}).",
                "schema": {"type": "integer", "minimum": 1, "maximum": maximum},
            },
            {
                "name": self.ordering_query_param,
                "required": False,
                "in": "query",
                "description": "Sort order.",
                "schema": {
                    "type": "string",
                    "enum": list(view.keyset_orderings),
                    "default": view.default_keyset_ordering,
                },
            },
        ]
