from collections import Counter
from datetime import timedelta

from django.contrib import admin
from django.utils import timezone

from .models import Task

# The tags offered by the admin's tag filter: the most used among this many tasks.
TAG_SAMPLE = 1000
TAGS_OFFERED = 20


class DueFilter(admin.SimpleListFilter):
    """Tasks by due date, in the server's time zone (UTC): overdue (pending and past
    due), due today, due in the next 7 days, or with no due date."""

    title = "due"
    parameter_name = "due"

    def lookups(self, request, model_admin):
        return [
            ("overdue", "Overdue"),
            ("today", "Today"),
            ("week", "Next 7 days"),
            ("none", "No due date"),
        ]

    def queryset(self, request, queryset):
        now = timezone.now()
        midnight = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
        if self.value() == "overdue":
            return queryset.filter(completed=False).due_between(before=now)
        if self.value() == "today":
            return queryset.due_between(after=midnight, before=midnight + timedelta(days=1))
        if self.value() == "week":
            return queryset.due_between(after=midnight, before=midnight + timedelta(days=7))
        if self.value() == "none":
            return queryset.filter(due_at__isnull=True)
        return queryset


class TagFilter(admin.SimpleListFilter):
    """Tasks with one tag, offered from the most used tags of the newest tasks."""

    title = "tag"
    parameter_name = "tag"

    def lookups(self, request, model_admin):
        counts = Counter(
            tag
            for tags in Task.objects.order_by("-id").values_list("tags", flat=True)[:TAG_SAMPLE]
            for tag in tags
        )
        return [(tag, f"#{tag}") for tag, _ in counts.most_common(TAGS_OFFERED)]

    def queryset(self, request, queryset):
        return queryset.with_tags([self.value()]) if self.value() else queryset


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ["title", "owner", "completed", "due_at", "priority", "created_at", "updated_at"]
    list_filter = ["completed", "priority", DueFilter, TagFilter, "created_at"]
    search_fields = ["title", "description", "owner__username"]
    list_select_related = ["owner"]
    raw_id_fields = ["owner"]
    readonly_fields = ["created_at", "updated_at"]
    date_hierarchy = "created_at"
