"""Liveness and readiness probes for the platform's health checks."""

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import JsonResponse

_migrations_known_applied = False


def healthz(request):
    """The process runs. Touches no database, so it answers during an outage."""
    return JsonResponse({"status": "ok"})


def readyz(request):
    """The database answers and every migration is applied; else 503 naming which."""
    global _migrations_known_applied
    connection = connections[DEFAULT_DB_ALIAS]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure to reach the database means "not ready"
        return JsonResponse(
            {"status": "unavailable", "database": f"unreachable: {type(exc).__name__}"},
            status=503,
        )
    if not _migrations_known_applied:
        try:
            executor = MigrationExecutor(connection)
            plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        except Exception as exc:  # e.g. the migrations table cannot be read
            return JsonResponse(
                {"status": "unavailable", "database": "ok", "migrations": str(exc)},
                status=503,
            )
        if plan:
            pending = [f"{migration.app_label}.{migration.name}" for migration, _ in plan]
            return JsonResponse(
                {"status": "unavailable", "database": "ok", "migrations": {"unapplied": pending}},
                status=503,
            )
        # A process never loses applied migrations, so checking once is enough.
        _migrations_known_applied = True
    return JsonResponse({"status": "ok", "database": "ok", "migrations": "ok"})
