"""A ChatKit thread's status on its conversation: `thread_status` (NULL for active,
else "locked" or "closed") and an optional reason, which needs a status.

Both columns are nullable with no default: an ALTER TABLE ADD COLUMN on SQLite too,
which keeps the triggers of 0003, 0004 and 0008 on chat_conversation (a CHECK
constraint added there would rebuild the table and drop them). The constraint is in
the model's state; the database holds it as a CHECK on PostgreSQL and by triggers on
SQLite.
"""

import importlib

from django.db import migrations, models

run = importlib.import_module("chat.migrations.0003_owner_follows_conversation").run

VALID = (
    "(thread_status IS NOT NULL AND thread_status IN ('locked', 'closed'))"
    " OR (thread_status IS NULL AND thread_status_reason IS NULL)"
)
POSTGRESQL_FORWARD = [
    f"ALTER TABLE chat_conversation ADD CONSTRAINT conversation_thread_status_valid CHECK ({VALID})"
]
POSTGRESQL_BACKWARD = [
    "ALTER TABLE chat_conversation DROP CONSTRAINT conversation_thread_status_valid"
]
SQLITE_FORWARD = [
    f"""
    CREATE TRIGGER conversation_thread_status_valid_{event.split()[0].lower()}
    BEFORE {event} ON chat_conversation
    FOR EACH ROW WHEN NOT ({VALID.replace("thread_status", "NEW.thread_status")})
    BEGIN
        SELECT RAISE(ABORT, 'CHECK constraint failed: conversation_thread_status_valid');
    END
    """
    for event in ("INSERT", "UPDATE OF thread_status, thread_status_reason")
]
SQLITE_BACKWARD = [
    f"DROP TRIGGER IF EXISTS conversation_thread_status_valid_{event}"
    for event in ("insert", "update")
]


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0009_message_one_foreign_key"),
    ]

    operations = [
        migrations.AddField(
            model_name="conversation",
            name="thread_status",
            field=models.CharField(
                blank=True,
                choices=[("locked", "Locked"), ("closed", "Closed")],
                max_length=6,
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="conversation",
            name="thread_status_reason",
            field=models.CharField(blank=True, max_length=200, null=True),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddConstraint(
                    model_name="conversation",
                    constraint=models.CheckConstraint(
                        condition=models.Q(
                            ("thread_status__in", ["locked", "closed"]),
                            ("thread_status__isnull", False),
                        )
                        | models.Q(
                            ("thread_status__isnull", True),
                            ("thread_status_reason__isnull", True),
                        ),
                        name="conversation_thread_status_valid",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunPython(
                    run({"postgresql": POSTGRESQL_FORWARD, "sqlite": SQLITE_FORWARD}),
                    run({"postgresql": POSTGRESQL_BACKWARD, "sqlite": SQLITE_BACKWARD}),
                ),
            ],
        ),
    ]
