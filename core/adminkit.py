"""Admin helpers shared by the apps' admins.

`deletion_summary`: the delete confirmation of an object deleted by a service.

`AutocompleteFilter`: a list filter that picks a related object with the admin's
autocomplete.

Django's admin has no autocomplete list filter: `RelatedFieldListFilter` lists every
user (or conversation) in the sidebar, a query and a page that grow with the data.
`AutocompleteFilter` shows one select2 box fed by the admin's own autocomplete view
(so the related model's admin must have `search_fields`) and filters on the plain
lookup `?<field>__id__exact=<pk>`, the same parameter links elsewhere in the admin
use. It costs one query (the chosen object's label) when a value is chosen, none
otherwise.
"""

from django import forms
from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.widgets import AutocompleteSelect
from django.urls import reverse
from django.utils.html import format_html


def as_id(value):
    """`value` (a query parameter) as a row id, or None if it cannot be one: ASCII
    digits only, and few enough for a 64-bit integer column."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    return None


class AutocompleteFilter(admin.SimpleListFilter):
    """Subclass with `field_name` (a ForeignKey of the model) and `title`."""

    field_name = None
    template = "admin/core/autocomplete_filter.html"

    def __init__(self, request, params, model, model_admin):
        self.parameter_name = f"{self.field_name}__id__exact"
        self.field = model._meta.get_field(self.field_name)
        self.admin_site = model_admin.admin_site
        super().__init__(request, params, model, model_admin)
        if self.value() is not None and as_id(self.value()) is None:
            raise IncorrectLookupParameters(f"{self.parameter_name} must be an id.")

    def lookups(self, request, model_admin):
        # The choices are fetched by the widget as the user types.
        return ()

    def has_output(self):
        return True

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        return queryset.filter(**{self.parameter_name: as_id(self.value())})

    def widget_html(self):
        """The select2 box, with the chosen object (if any) as its one option."""
        remote = self.field.remote_field.model
        choice = forms.ModelChoiceField(
            queryset=remote._default_manager.all(),
            widget=AutocompleteSelect(self.field, self.admin_site),
            required=False,
        )
        return choice.widget.render(
            self.parameter_name,
            self.value(),
            attrs={
                "id": f"filter_{self.parameter_name}",
                "class": "autocomplete-filter",
                "data-filter-parameter": self.parameter_name,
                "style": "width: 100%",
            },
        )


def autocomplete_filter(field_name, title):
    """An `AutocompleteFilter` on `field_name` for a ModelAdmin's `list_filter`."""
    return type(
        f"{field_name.title()}AutocompleteFilter",
        (AutocompleteFilter,),
        {"field_name": field_name, "title": title},
    )


class AutocompleteFilterMedia:
    """Mixin for a ModelAdmin with an `AutocompleteFilter`: loads select2 on its pages."""

    @property
    def media(self):
        select2 = AutocompleteSelect(None, self.admin_site).media
        # Listed with what it needs before it (django.jQuery), which fixes its place
        # when the lists are merged.
        filter_js = forms.Media(
            js=[
                "admin/js/jquery.init.js",
                "admin/js/autocomplete.js",
                "core/autocomplete_filter.js",
            ]
        )
        return super().media + select2 + filter_js


def deletion_summary(objs, counts):
    """What `get_deleted_objects` returns for a delete done by a service: each object
    (a link) with the counts of what goes with it, in a few queries however much that
    is, and no per-model delete permission asked for rows staff may not delete one by
    one (messages, chat turns) but that go with their parent.
    """
    to_delete = []
    for obj in objs:
        opts = obj._meta
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
        to_delete.append(format_html('{}: <a href="{}">{}</a>', opts.verbose_name, url, obj))
    model_count = {label: count for label, count in counts.items() if count}
    if len(to_delete) == 1:
        to_delete.append([f"{count} {label}" for label, count in list(model_count.items())[1:]])
    return to_delete, model_count, set(), []
