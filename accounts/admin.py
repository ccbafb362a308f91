"""The user admin: what a user owns, one click away; deleting a user deletes their data
through `accounts.services.account_delete`.

Also takes the token blacklist tables off the admin index: staff never need them,
and they are written by the token endpoints only.
"""

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from chat.models import ChatTurn, Conversation, Message
from core.adminkit import deletion_summary
from tasks.models import Task

from . import services

User = get_user_model()

# Registered by the apps before this one in INSTALLED_APPS.
admin.site.unregister([OutstandingToken, BlacklistedToken, User])


def user_time_zone(user):
    """The user's time zone name, or None when they have not set one.

    HOOK for the todo issue: it adds a `timezone` profile; return it from here
    (e.g. `user.profile.timezone`) and the user's admin page shows it. Until then
    no user has one and the page says which time zone applies (settings.TIME_ZONE).
    """
    return None


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    """Django's user admin, plus the user's data counted and linked, and their time zone."""

    readonly_fields = ["owned_data", "time_zone"]

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        first, *rest = fieldsets
        return [first, ("Data", {"fields": ["owned_data", "time_zone"]}), *rest]

    @admin.display(description="owns")
    def owned_data(self, user):
        """Counts of the user's tasks, conversations and messages, each linking to the
        list filtered by this owner (three COUNTs on owner-leading indexes)."""
        rows = []
        for model, url in [
            (Task, "admin:tasks_task_changelist"),
            (Conversation, "admin:chat_conversation_changelist"),
            (Message, "admin:chat_message_changelist"),
        ]:
            count = model.objects.filter(owner=user).count()
            names = model._meta.verbose_name if count == 1 else model._meta.verbose_name_plural
            rows.append((reverse(url), user.pk, count, names))
        return format_html(
            '<ul class="owned-data" style="margin: 0; padding: 0; list-style: none">{}</ul>',
            format_html_join("", '<li><a href="{}?owner__id__exact={}">{} {}</a></li>', rows),
        )

    @admin.display(description="time zone")
    def time_zone(self, user):
        return user_time_zone(user) or f"Not set (times are shown in {settings.TIME_ZONE})"

    def delete_model(self, request, obj):
        services.account_delete(user=obj)

    def delete_queryset(self, request, queryset):
        for user in queryset:
            services.account_delete(user=user)

    def get_deleted_objects(self, objs, request):
        objs = list(objs)
        counts = {"users": len(objs)}
        for label, model in [
            ("tasks", Task),
            ("conversations", Conversation),
            ("messages", Message),
            ("chat turns", ChatTurn),
        ]:
            counts[label] = model.objects.filter(owner__in=objs).count()
        return deletion_summary(objs, counts)
