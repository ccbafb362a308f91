"""Statistics on the expressions that `?search=` filters by (PostgreSQL only).

A search is `UPPER(title::text) LIKE '%WORD%' OR UPPER(description::text) LIKE ...`.
Without statistics on those expressions the planner guesses that almost no row
matches, reads all of the owner's tasks by bitmap and sorts the matches (36 ms
for 10,000 tasks). With them it estimates the matches close to right and walks
(owner, created_at, id) backwards until the page is full (0.9 ms); see
bench/README.md. No index: nothing to maintain on writes. SQLite has no such
statistics and is left as it is.
"""

from django.db import migrations

CREATE = """
CREATE STATISTICS IF NOT EXISTS task_search_text
ON (upper(title::text)), (upper(description::text)) FROM tasks_task;
ANALYZE tasks_task;
"""
DROP = "DROP STATISTICS IF EXISTS task_search_text;"


def on_postgresql(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(on_postgresql(CREATE), on_postgresql(DROP)),
    ]
