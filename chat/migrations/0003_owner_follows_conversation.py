"""A message's and a chat turn's owner is always its conversation's owner.

`owner_id` is copied onto messages and turns so every table can be filtered and
partitioned by user, and reads of a message page trust it. The database keeps the
copy true, whatever writes it (the API, the admin, a shell, a migration):

- PostgreSQL: composite foreign keys (conversation_id, owner_id) →
  chat_conversation (id, owner_id) with ON UPDATE CASCADE, so a conversation that
  changes owner takes its messages and turns along, and a row whose owner differs
  from its conversation's cannot be stored. The referenced pair is unique
  (`conversation_id_owner_unique`, declared on the model).
- SQLite: triggers with the same effect (SQLite cannot add a foreign key to an
  existing table). SQLite drops a table's triggers when Django rebuilds the table
  in a later migration: `chat/tests/test_ownership.py` fails if that happens.
"""

from django.db import migrations, models

POSTGRESQL_FORWARD = [
    f"""
    ALTER TABLE {table} ADD CONSTRAINT {table}_conversation_owner_fk
        FOREIGN KEY (conversation_id, owner_id)
        REFERENCES chat_conversation (id, owner_id)
        ON UPDATE CASCADE DEFERRABLE INITIALLY DEFERRED
    """
    for table in ("chat_message", "chat_chatturn")
]
POSTGRESQL_BACKWARD = [
    f"ALTER TABLE {table} DROP CONSTRAINT {table}_conversation_owner_fk"
    for table in ("chat_message", "chat_chatturn")
]

SQLITE_FORWARD = [
    """
    CREATE TRIGGER chat_conversation_owner_cascade
    AFTER UPDATE OF owner_id ON chat_conversation
    FOR EACH ROW WHEN NEW.owner_id IS NOT OLD.owner_id
    BEGIN
        UPDATE chat_message SET owner_id = NEW.owner_id WHERE conversation_id = NEW.id;
        UPDATE chat_chatturn SET owner_id = NEW.owner_id WHERE conversation_id = NEW.id;
    END
    """,
    *(
        f"""
        CREATE TRIGGER {table}_owner_is_conversation_owner_{event.split()[0].lower()}
        BEFORE {event} ON {table}
        FOR EACH ROW WHEN NEW.owner_id IS NOT
            (SELECT owner_id FROM chat_conversation WHERE id = NEW.conversation_id)
        BEGIN
            SELECT RAISE(ABORT, '{table}_conversation_owner_fk: the owner must be the conversation''s owner');
        END
        """
        for table in ("chat_message", "chat_chatturn")
        for event in ("INSERT", "UPDATE OF owner_id, conversation_id")
    ),
]
SQLITE_BACKWARD = [
    "DROP TRIGGER chat_conversation_owner_cascade",
    *(
        f"DROP TRIGGER {table}_owner_is_conversation_owner_{event}"
        for table in ("chat_message", "chat_chatturn")
        for event in ("insert", "update")
    ),
]


def run(statements_by_vendor):
    def operation(apps, schema_editor):
        for statement in statements_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(statement)

    return operation


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0002_chatturn"),
    ]

    operations = [
        migrations.AddConstraint(
            model_name="conversation",
            constraint=models.UniqueConstraint(
                fields=("id", "owner"), name="conversation_id_owner_unique"
            ),
        ),
        migrations.RunPython(
            run({"postgresql": POSTGRESQL_FORWARD, "sqlite": SQLITE_FORWARD}),
            run({"postgresql": POSTGRESQL_BACKWARD, "sqlite": SQLITE_BACKWARD}),
        ),
    ]
