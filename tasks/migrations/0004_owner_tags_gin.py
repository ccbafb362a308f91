"""The tag filter's GIN index leads with the owner (PostgreSQL only).

`?tag=` is `owner_id = %s AND tags @> %s`. A tag on many of the user's tasks is
answered by walking `task_owner_created` (a page in about a hundred entries); a rare
one by this index. On `tags` alone (0003) that bitmap held every user's matches and
was ANDed with the owner's whole `task_owner_created` range; on (owner_id, tags) it
holds only the user's own (bench/README.md, "Filtered task pages", has both).
`btree_gin` gives GIN its `owner_id` operator class: chat's 0006 creates it too,
and `IF NOT EXISTS` makes either order work (creating it needs the owner connection
`migrate` uses).
"""

from django.db import migrations

FORWARD = [
    "CREATE EXTENSION IF NOT EXISTS btree_gin",
    "CREATE INDEX task_owner_tags_gin ON tasks_task USING gin (owner_id, tags jsonb_path_ops)",
    "DROP INDEX IF EXISTS task_tags_gin",
]
BACKWARD = [
    "CREATE INDEX task_tags_gin ON tasks_task USING gin (tags jsonb_path_ops)",
    "DROP INDEX IF EXISTS task_owner_tags_gin",
]


def on_postgresql(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            for sql in statements:
                schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("tasks", "0003_due_priority_tags_repeat")]

    operations = [migrations.RunPython(on_postgresql(FORWARD), on_postgresql(BACKWARD))]
