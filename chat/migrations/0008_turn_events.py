"""Turn events, and a turn's `cancelled` status with its cancel request.

Changing `chatturn_status_valid` makes SQLite rebuild chat_chatturn, which drops
the triggers 0003 put on it, and which 0003's trigger on chat_conversation (it
names chat_chatturn) would refuse: that one is dropped first, and all are created
again after the rebuild (in both directions). An event's owner is its
turn's, held as 0003 holds a turn's: a composite foreign key (turn_id, owner_id)
→ chat_chatturn (id, owner_id) with ON UPDATE CASCADE on PostgreSQL (so a
conversation that changes owner takes its turns' events along), triggers on SQLite.
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


TURN_TRIGGERS = [
    f"""
    CREATE TRIGGER IF NOT EXISTS chat_chatturn_owner_is_conversation_owner_{event.split()[0].lower()}
    BEFORE {event} ON chat_chatturn
    FOR EACH ROW WHEN NEW.owner_id IS NOT
        (SELECT owner_id FROM chat_conversation WHERE id = NEW.conversation_id)
    BEGIN
        SELECT RAISE(ABORT, 'chat_chatturn_conversation_owner_fk: the owner must be the conversation''s owner');
    END
    """
    for event in ("INSERT", "UPDATE OF owner_id, conversation_id")
]

CONVERSATION_CASCADE = """
    CREATE TRIGGER IF NOT EXISTS chat_conversation_owner_cascade
    AFTER UPDATE OF owner_id ON chat_conversation
    FOR EACH ROW WHEN NEW.owner_id IS NOT OLD.owner_id
    BEGIN
        UPDATE chat_message SET owner_id = NEW.owner_id WHERE conversation_id = NEW.id;
        UPDATE chat_chatturn SET owner_id = NEW.owner_id WHERE conversation_id = NEW.id;
    END
"""
DROP_CONVERSATION_CASCADE = "DROP TRIGGER IF EXISTS chat_conversation_owner_cascade"

EVENT_SQLITE_FORWARD = [
    """
    CREATE TRIGGER chat_chatturn_owner_cascade
    AFTER UPDATE OF owner_id ON chat_chatturn
    FOR EACH ROW WHEN NEW.owner_id IS NOT OLD.owner_id
    BEGIN
        UPDATE chat_turnevent SET owner_id = NEW.owner_id WHERE turn_id = NEW.id;
    END
    """,
    *(
        f"""
        CREATE TRIGGER chat_turnevent_owner_is_turn_owner_{event.split()[0].lower()}
        BEFORE {event} ON chat_turnevent
        FOR EACH ROW WHEN NEW.owner_id IS NOT
            (SELECT owner_id FROM chat_chatturn WHERE id = NEW.turn_id)
        BEGIN
            SELECT RAISE(ABORT, 'chat_turnevent_turn_owner_fk: the owner must be the turn''s owner');
        END
        """
        for event in ("INSERT", "UPDATE OF owner_id, turn_id")
    ),
]
EVENT_SQLITE_BACKWARD = [
    DROP_CONVERSATION_CASCADE,
    "DROP TRIGGER chat_chatturn_owner_cascade",
    "DROP TRIGGER chat_turnevent_owner_is_turn_owner_insert",
    "DROP TRIGGER chat_turnevent_owner_is_turn_owner_update",
]
EVENT_POSTGRESQL_FORWARD = [
    """
    ALTER TABLE chat_turnevent ADD CONSTRAINT chat_turnevent_turn_owner_fk
        FOREIGN KEY (turn_id, owner_id)
        REFERENCES chat_chatturn (id, owner_id)
        ON UPDATE CASCADE DEFERRABLE INITIALLY DEFERRED
    """
]
EVENT_POSTGRESQL_BACKWARD = [
    "ALTER TABLE chat_turnevent DROP CONSTRAINT chat_turnevent_turn_owner_fk"
]


def run(statements_by_vendor):
    def operation(apps, schema_editor):
        for statement in statements_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(statement)

    return operation


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0007_message_owner_created"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # Reversed last: the rebuilds reversing this migration dropped 0003's triggers.
        migrations.RunPython(
            run({"sqlite": [DROP_CONVERSATION_CASCADE]}),
            run({"sqlite": [*TURN_TRIGGERS, CONVERSATION_CASCADE]}),
        ),
        migrations.CreateModel(
            name="TurnEvent",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("seq", models.PositiveIntegerField()),
                (
                    "name",
                    models.CharField(
                        choices=[
                            ("turn.started", "Started"),
                            ("message.delta", "Delta"),
                            ("tool.call", "Tool Call"),
                            ("tool.result", "Tool Result"),
                            ("turn.done", "Done"),
                            ("turn.failed", "Failed"),
                            ("turn.cancelled", "Cancelled"),
                        ],
                        max_length=32,
                    ),
                ),
                ("data", models.JSONField()),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                "ordering": ["turn", "seq"],
            },
        ),
        migrations.RemoveConstraint(
            model_name="chatturn",
            name="chatturn_status_valid",
        ),
        migrations.AddField(
            model_name="chatturn",
            name="cancel_requested_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="chatturn",
            name="status",
            field=models.CharField(
                choices=[
                    ("running", "Running"),
                    ("succeeded", "Succeeded"),
                    ("failed", "Failed"),
                    ("cancelled", "Cancelled"),
                ],
                default="running",
                max_length=16,
            ),
        ),
        migrations.AddConstraint(
            model_name="chatturn",
            constraint=models.CheckConstraint(
                condition=models.Q(("status__in", ["running", "succeeded", "failed", "cancelled"])),
                name="chatturn_status_valid",
            ),
        ),
        migrations.AddConstraint(
            model_name="chatturn",
            constraint=models.UniqueConstraint(
                fields=("id", "owner"), name="chatturn_id_owner_unique"
            ),
        ),
        migrations.AddField(
            model_name="turnevent",
            name="owner",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="chat_turn_events",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="turnevent",
            name="turn",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="events",
                to="chat.chatturn",
            ),
        ),
        migrations.AddConstraint(
            model_name="turnevent",
            constraint=models.UniqueConstraint(
                fields=("turn", "seq"), name="turnevent_turn_seq_unique"
            ),
        ),
        migrations.AddConstraint(
            model_name="turnevent",
            constraint=models.CheckConstraint(
                condition=models.Q(("seq__gte", 1)), name="turnevent_seq_gte_1"
            ),
        ),
        migrations.AddConstraint(
            model_name="turnevent",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    (
                        "name__in",
                        [
                            "turn.started",
                            "message.delta",
                            "tool.call",
                            "tool.result",
                            "turn.done",
                            "turn.failed",
                            "turn.cancelled",
                        ],
                    )
                ),
                name="turnevent_name_valid",
            ),
        ),
        migrations.RunPython(
            run(
                {
                    "postgresql": EVENT_POSTGRESQL_FORWARD,
                    "sqlite": [*TURN_TRIGGERS, CONVERSATION_CASCADE, *EVENT_SQLITE_FORWARD],
                }
            ),
            run({"postgresql": EVENT_POSTGRESQL_BACKWARD, "sqlite": EVENT_SQLITE_BACKWARD}),
        ),
    ]
