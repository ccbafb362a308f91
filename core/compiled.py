"""Hot reads compiled to SQL once, then run with each request's values.

Django turns a queryset into SQL every time it is evaluated. For the reads nearly
every request makes (the token's user, a page of tasks or messages) building and
compiling the queryset costs more CPU than the database spends answering it
(bench/README.md). Their shape is fixed and only values change, so such a read is
written as an ordinary queryset whose changing values are `Param`s; `CompiledQuery`
compiles it once per thread and database and runs that SQL with the values of each
call. Rows pass through the same converters the ORM applies (SQLite's datetimes,
JSON), so a compiled read returns what evaluating the queryset would.

    USER_BY_ID = CompiledQuery(User.objects.filter(pk=Param("id", User._meta.pk)))
    user = USER_BY_ID.first(id=42)

A `Param`'s value is what its column stores (a pk for a foreign key), prepared by
its `output_field` as the ORM prepares a literal compared to that field. Everything
else in the queryset is frozen at compile time.
"""

import functools
import threading

from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import Expression
from django.db.models.query import ModelIterable, NamedValuesListIterable
from django.db.models.utils import create_namedtuple_class

from .lru import LRU


class Param(Expression):
    """A placeholder for the value named `name`, given when the query runs."""

    def __init__(self, name, output_field):
        super().__init__(output_field=output_field)
        self.name = name

    def as_sql(self, compiler, connection):
        return "%s", (self,)

    def prepare(self, value, connection):
        return self.output_field.get_db_prep_value(value, connection, prepared=False)


class _Compiled:
    """One thread's compiled form of a query: SQL, parameter template, row builder."""

    def __init__(self, queryset, connection):
        self.connection = connection
        if queryset._prefetch_related_lookups:
            raise ValueError("CompiledQuery does not prefetch")
        compiler = queryset.query.get_compiler(connection=connection)
        try:
            self.sql, self.params = compiler.as_sql()
        except EmptyResultSet:  # e.g. `pk__in=[]`: no row, whatever the values
            self.sql = None
            return
        if compiler.has_extra_select:
            raise ValueError("CompiledQuery reads no extra columns (distinct with ordering)")
        self.compiler = compiler
        fields = [select[0] for select in compiler.select[: compiler.col_count]]
        self.converters = compiler.get_converters(fields)
        self.make_row = self._row_builder(queryset, compiler)

    @staticmethod
    def _row_builder(queryset, compiler):
        if queryset._iterable_class is ModelIterable:
            if compiler.annotation_col_map or queryset.query.select_related:
                raise ValueError("CompiledQuery reads plain model rows only")
            model = compiler.klass_info["model"]
            fields = compiler.klass_info["select_fields"]
            start, end = fields[0], fields[-1] + 1
            names = [select[0].target.attname for select in compiler.select[start:end]]
            db = queryset.db
            return lambda row: model.from_db(db, names, row[start:end])
        if queryset._iterable_class is NamedValuesListIterable:
            query = queryset.query
            names = queryset._fields or [
                *query.extra_select,
                *query.values_select,
                *query.annotation_select,
            ]
            return create_namedtuple_class(*names)._make
        raise ValueError("CompiledQuery reads model instances or values_list(named=True)")

    def run(self, values):
        if self.sql is None:
            return []
        connection = self.connection
        params = [
            param.prepare(values[param.name], connection) if isinstance(param, Param) else param
            for param in self.params
        ]
        with connection.cursor() as cursor:
            cursor.execute(self.sql, params)
            rows = cursor.fetchall()
        if self.converters:
            rows = self.compiler.apply_converters(rows, self.converters)
        return [self.make_row(row) for row in rows]


class CompiledQuery:
    """A queryset with `Param` placeholders, compiled once per thread and database."""

    def __init__(self, queryset):
        self.queryset = queryset
        self._local = threading.local()

    def _compiled(self):
        # Django's connections are per thread: so is the compiled form, which holds one.
        connection = connections[self.queryset.db]
        compiled = getattr(self._local, "compiled", None)
        if compiled is None or compiled.connection is not connection:
            compiled = self._local.compiled = _Compiled(self.queryset, connection)
        return compiled

    def all(self, **values):
        """Every row, as the queryset would give it (instances or named tuples)."""
        return self._compiled().run(values)

    def first(self, **values):
        """The first row, or None."""
        rows = self._compiled().run(values)
        return rows[0] if rows else None

    @property
    def sql(self):
        return self._compiled().sql


def selector_key(build):
    """The identity of a query builder: the function itself, with a partial's arguments.

    Two builders have the same key exactly when they build the same query, so the
    key of a compiled read can never be mistyped or collide with another's.
    """
    if isinstance(build, functools.partial):
        return (selector_key(build.func), build.args, tuple(sorted(build.keywords.items())))
    return build


class CompiledQueries:
    """CompiledQuery objects by builder, the least recently used dropped past `size`.

    For reads whose shape varies within a small set (ordering, direction, page size):
    `get(build, *variant)` returns the compiled query of `build()` for that variant,
    compiling it the first time. The key is the builder itself (`selector_key`), so
    `build` must depend on nothing but its own arguments and the variant; every
    per-request value is a Param.
    """

    def __init__(self, size=256):
        self._queries = LRU(size)

    def get(self, build, *variant, page_query=None):
        """The compiled query of `page_query()` (default `build()`), keyed by `build`
        and `variant`."""
        key = (selector_key(build), *variant)
        query = self._queries.get(key)
        if query is None:
            query = CompiledQuery((page_query or build)())
            self._queries.set(key, query)
        return query
