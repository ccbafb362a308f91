"""The tasks admin: changes and deletes go through `tasks.services`; the owner is
chosen once, when the task is added."""

from django import forms
from django.contrib import admin

from core.adminkit import AutocompleteFilterMedia, autocomplete_filter

from . import services
from .models import Task


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
    list_display = ["title", "owner", "completed", "created_at", "updated_at"]
    list_filter = [autocomplete_filter("owner", "owner"), "completed", "created_at"]
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
