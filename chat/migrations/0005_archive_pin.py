"""Archive and pin: two flags on a conversation, and the indexes of its list and of
retention.

On SQLite, adding a NOT NULL column rebuilds `chat_conversation`, which drops the
triggers on it and breaks those that read it (0003_owner_follows_conversation,
0004_chatkit): those triggers are dropped before the rebuild and created again after
it, in both directions (`chat/tests/test_ownership.py` checks they still hold).
"""

import importlib

from django.db import migrations, models

ownership = importlib.import_module("chat.migrations.0003_owner_follows_conversation")
feedback = importlib.import_module("chat.migrations.0004_chatkit")
create_triggers = ownership.run(
    {"sqlite": [*ownership.SQLITE_FORWARD, *feedback.SQLITE_FORWARD]}
)
drop_triggers = ownership.run(
    {"sqlite": [*ownership.SQLITE_BACKWARD, *feedback.SQLITE_BACKWARD]}
)


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0004_chatkit"),
    ]

    operations = [
        migrations.RunPython(drop_triggers, create_triggers),
        migrations.RemoveIndex(model_name="conversation", name="conversation_owner_activity"),
        migrations.AddField(
            model_name="conversation",
            name="archived",
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name="conversation",
            name="pinned",
            field=models.BooleanField(default=False),
        ),
        migrations.AddIndex(
            model_name="conversation",
            index=models.Index(
                fields=["owner", "archived", "pinned", "updated_at", "id"],
                name="conversation_owner_list",
            ),
        ),
        migrations.AddIndex(
            model_name="conversation",
            index=models.Index(fields=["updated_at", "id"], name="conversation_activity"),
        ),
        migrations.RunPython(create_triggers, drop_triggers),
    ]
