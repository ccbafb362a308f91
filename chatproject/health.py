"""Liveness and readiness probes for the platform's health checks.

`/healthz` says the process runs; `/readyz` says it can serve: the database answers
and no migration is unapplied. Both answer JSON, are never cached, and need no
credentials. A 503 from `/readyz` names what is wrong, e.g.
`{"status": "unavailable", "database": "unreachable: OperationalError"}` or
`{"status": "unavailable", "database": "ok", "migrations": {"unapplied": ["chat.0002_x"]}}`.
"""

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

# Set once every migration has been seen applied: a process never loses them, so
# later probes cost one `SELECT 1`.
_migrations_known_applied = False


def _unavailable(**details):
    return JsonResponse({"status": "unavailable", **details}, status=503)


@never_cache
@require_safe
def healthz(request):
    """The process runs. Touches no database, so it answers during an outage."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
def readyz(request):
    """The database answers and every migration is applied; else 503 naming which."""
    global _migrations_known_applied
    connection = connections[DEFAULT_DB_ALIAS]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure to reach the database means "not ready"
        return _unavailable(database=f"unreachable: {type(exc).__name__}")
    if not _migrations_known_applied:
        try:
            executor = MigrationExecutor(connection)
            plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        except Exception as exc:  # e.g. the migrations table cannot be read
            return _unavailable(database="ok", migrations=f"unknown: {type(exc).__name__}")
        if plan:
            pending = [f"{migration.app_label}.{migration.name}" for migration, _ in plan]
            return _unavailable(database="ok", migrations={"unapplied": pending})
        _migrations_known_applied = True
    return JsonResponse({"status": "ok", "database": "ok", "migrations": "ok"})
