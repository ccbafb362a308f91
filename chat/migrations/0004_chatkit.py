"""ChatKit: messages a retry supersedes, and feedback on messages.

A feedback row's owner is its conversation's owner, held by the database as for
messages (0003_owner_follows_conversation): a composite foreign key with ON UPDATE
CASCADE on PostgreSQL, triggers on SQLite. The same key deletes a conversation's
feedback with it (ON DELETE CASCADE; a trigger on SQLite), so deleting a conversation
or an account costs no extra statement (chat.services.conversation_delete). Adding
`superseded_at` (nullable, no default) is an ALTER TABLE ADD COLUMN on SQLite, which
keeps chat_message's triggers.
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

TABLE = "chat_messagefeedback"

POSTGRESQL_FORWARD = [
    f"""
    ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_conversation_owner_fk
        FOREIGN KEY (conversation_id, owner_id)
        REFERENCES chat_conversation (id, owner_id)
        ON UPDATE CASCADE ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED
    """
]
POSTGRESQL_BACKWARD = [f"ALTER TABLE {TABLE} DROP CONSTRAINT {TABLE}_conversation_owner_fk"]

SQLITE_FORWARD = [
    f"""
    CREATE TRIGGER {TABLE}_owner_cascade
    AFTER UPDATE OF owner_id ON chat_conversation
    FOR EACH ROW WHEN NEW.owner_id IS NOT OLD.owner_id
    BEGIN
        UPDATE {TABLE} SET owner_id = NEW.owner_id WHERE conversation_id = NEW.id;
    END
    """,
    f"""
    CREATE TRIGGER {TABLE}_conversation_delete_cascade
    AFTER DELETE ON chat_conversation
    FOR EACH ROW
    BEGIN
        DELETE FROM {TABLE} WHERE conversation_id = OLD.id;
    END
    """,
    *(
        f"""
        CREATE TRIGGER {TABLE}_owner_is_conversation_owner_{event.split()[0].lower()}
        BEFORE {event} ON {TABLE}
        FOR EACH ROW WHEN NEW.owner_id IS NOT
            (SELECT owner_id FROM chat_conversation WHERE id = NEW.conversation_id)
        BEGIN
            SELECT RAISE(ABORT, '{TABLE}_conversation_owner_fk: the owner must be the conversation''s owner');
        END
        """
        for event in ("INSERT", "UPDATE OF owner_id, conversation_id")
    ),
]
SQLITE_BACKWARD = [
    f"DROP TRIGGER {TABLE}_owner_cascade",
    f"DROP TRIGGER {TABLE}_conversation_delete_cascade",
    f"DROP TRIGGER {TABLE}_owner_is_conversation_owner_insert",
    f"DROP TRIGGER {TABLE}_owner_is_conversation_owner_update",
]


def run(statements_by_vendor):
    def operation(apps, schema_editor):
        for statement in statements_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(statement)

    return operation


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0003_owner_follows_conversation"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="superseded_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.CreateModel(
            name="MessageFeedback",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("kind", models.CharField(choices=[("up", "Up"), ("down", "Down")], max_length=8)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "conversation",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="feedback",
                        to="chat.conversation",
                    ),
                ),
                (
                    "message",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="feedback",
                        to="chat.message",
                    ),
                ),
                (
                    "owner",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="message_feedback",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at", "-id"],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("kind__in", ["up", "down"])),
                        name="messagefeedback_kind_valid",
                    )
                ],
            },
        ),
        migrations.RunPython(
            run({"postgresql": POSTGRESQL_FORWARD, "sqlite": SQLITE_FORWARD}),
            run({"postgresql": POSTGRESQL_BACKWARD, "sqlite": SQLITE_BACKWARD}),
        ),
    ]
