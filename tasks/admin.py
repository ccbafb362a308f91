"""The tasks admin: changes and deletes go through `tasks.services`; the owner is
chosen once, when the task is added."""

from collections import Counter
from datetime import timedelta

from django import forms
from django.contrib import admin
from django.utils import timezone

from core.adminkit import AutocompleteFilterMedia, autocomplete_filter

from . import services
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


class TaskForm(forms.ModelForm):
    """Title and description follow the service's rules (a form error, never a 500)."""

    class Meta:
        model = Task
        fields = ["owner", "title", "description", "completed"]

    def _clean_with(self, clean, name):
        try:
            return clean(self.cleaned_data[name])
        except services.InvalidTask as error:
            raise forms.ValidationError(str(error.detail)) from None

    def clean_title(self):
        return self._clean_with(services.clean_title, "title")

    def clean_description(self):
        return self._clean_with(services.clean_description, "description")


@admin.register(Task)
class TaskAdmin(AutocompleteFilterMedia, admin.ModelAdmin):
    form = TaskForm
    list_display = ["title", "owner", "completed", "due_at", "priority", "created_at", "updated_at"]
    list_filter = [
        autocomplete_filter("owner", "owner"),
        "completed",
        "priority",
        DueFilter,
        TagFilter,
        "created_at",
    ]
    search_fields = ["title", "description", "owner__username"]
    list_select_related = ["owner"]
    autocomplete_fields = ["owner"]
    readonly_fields = ["created_at", "updated_at"]
    date_hierarchy = "created_at"
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        return [*fields, "owner"] if obj is not None else fields

    def save_model(self, request, obj, form, change):
        if change:
            services.task_update(
                task=obj, title=obj.title, description=obj.description, completed=obj.completed
            )
        else:
            super().save_model(request, obj, form, change)

    def delete_model(self, request, obj):
        services.task_delete(owner=obj.owner_id, task_id=obj.pk)

    def delete_queryset(self, request, queryset):
        for task in queryset:
            services.task_delete(owner=task.owner_id, task_id=task.pk)
