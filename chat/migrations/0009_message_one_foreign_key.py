"""A message's only foreign key in the database is the composite one (0003).

(conversation_id, owner_id) → chat_conversation (id, owner_id) proves that the
conversation exists and that the owner is its owner (and so an existing user):
the single-column keys on conversation_id and owner_id checked nothing more, yet
each cost every append a lookup and a shared row lock, the user's row lock shared
by all of that user's concurrent writes. PostgreSQL drops them here; on SQLite the
owner triggers of 0003 hold the same rule, and the table is left as it is (a
rebuild there would drop those triggers).
"""

from django.conf import settings
from django.db import migrations, models

DROP_SINGLE_COLUMN_KEYS = """
DO $$
DECLARE name text;
BEGIN
    FOR name IN
        SELECT conname FROM pg_constraint
        WHERE conrelid = 'chat_message'::regclass AND contype = 'f'
            AND array_length(conkey, 1) = 1
    LOOP
        EXECUTE format('ALTER TABLE chat_message DROP CONSTRAINT %I', name);
    END LOOP;
END $$
"""
RESTORE_SINGLE_COLUMN_KEYS = [
    "ALTER TABLE chat_message ADD CONSTRAINT chat_message_conversation_id_fk"
    " FOREIGN KEY (conversation_id) REFERENCES chat_conversation (id)"
    " DEFERRABLE INITIALLY DEFERRED",
    "ALTER TABLE chat_message ADD CONSTRAINT chat_message_owner_id_fk"
    " FOREIGN KEY (owner_id) REFERENCES auth_user (id) DEFERRABLE INITIALLY DEFERRED",
]


def on_postgresql(*statements):
    def operation(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            for statement in statements:
                schema_editor.execute(statement, None)

    return operation


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0008_turn_events"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="message",
                    name="conversation",
                    field=models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=models.deletion.CASCADE,
                        related_name="messages",
                        to="chat.conversation",
                    ),
                ),
                migrations.AlterField(
                    model_name="message",
                    name="owner",
                    field=models.ForeignKey(
                        db_constraint=False,
                        on_delete=models.deletion.CASCADE,
                        related_name="messages",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            database_operations=[
                migrations.RunPython(
                    on_postgresql(DROP_SINGLE_COLUMN_KEYS),
                    on_postgresql(*RESTORE_SINGLE_COLUMN_KEYS),
                ),
            ],
        ),
    ]
