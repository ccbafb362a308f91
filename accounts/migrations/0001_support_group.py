"""The "support" group: staff who read tasks, conversations, messages, chat turns and
users in the admin, and change nothing (view permissions only).

Permissions are made by a post_migrate signal, after every migration, so on a fresh
database they do not exist yet here: they are created first (what that signal would
do; it skips any that exist). Reversing deletes the group only.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUP = "support"
VIEW_PERMISSIONS = [
    ("tasks", "view_task"),
    ("chat", "view_conversation"),
    ("chat", "view_message"),
    ("chat", "view_chatturn"),
    ("auth", "view_user"),
]


def create_group(apps, schema_editor):
    db = schema_editor.connection.alias
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0, using=db, apps=apps)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.using(db).get_or_create(name=GROUP)
    for app_label, codename in VIEW_PERMISSIONS:
        group.permissions.add(
            Permission.objects.using(db).get(content_type__app_label=app_label, codename=codename)
        )


def delete_group(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Group.objects.using(schema_editor.connection.alias).filter(name=GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("tasks", "0002_search_text_statistics"),
        ("chat", "0002_chatturn"),
    ]

    operations = [migrations.RunPython(create_group, delete_group)]
