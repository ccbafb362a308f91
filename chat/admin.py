"""The chat admin: transcripts staff can read, and a log the admin cannot break.

Messages and chat turns are read-only here (no add, change or delete permission for
anyone): the log is written by `chat.services` and `chat.turns` only. A conversation
is deleted through `chat.services.conversation_delete` (its messages and turns go
with it, in three statements), moved to another user through
`chat.services.conversation_transfer`, and its owner is read-only once it exists.
"""

import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.widgets import AutocompleteSelect
from django.contrib.auth import get_user_model
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.text import Truncator
from django.utils.timezone import localtime

from core.adminkit import AutocompleteFilterMedia, as_id, autocomplete_filter, deletion_summary

from . import services
from .models import ChatTurn, Conversation, Message, MessageFeedback
from .search import MAX_SEARCH_LENGTH

# The transcript shows this many messages a page; older ones are a link away
# (?before=<seq>), so a 10,000-message conversation renders as fast as a short one.
TRANSCRIPT_LIMIT = 100
# A tool result of up to this many pretty-printed lines starts open.
RESULT_OPEN_LINES = 10
PREVIEW_LENGTH = 90

OwnerFilter = autocomplete_filter("owner", "owner")
ConversationFilter = autocomplete_filter("conversation", "conversation")


def _json(value, **kwargs):
    return json.dumps(value, ensure_ascii=False, default=str, **kwargs)


def call_text(name, arguments):
    """A tool call as `name(key="value", n=1)`; raw model text stays as it came."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return f"{name}({arguments})"
    if isinstance(arguments, dict):
        inner = ", ".join(f"{key}={_json(value)}" for key, value in arguments.items())
    elif arguments is None:
        inner = ""
    else:
        inner = _json(arguments)
    return f"{name}({inner})"


def result_view(name, result):
    """A tool result, pretty-printed, with a one-line preview for its <summary>."""
    pretty = _json(result, indent=2)
    lines = pretty.count("\n") + 1
    return {
        "name": name,
        "pretty": pretty,
        "lines": lines,
        "preview": Truncator(_json(result, separators=(",", ":"))).chars(PREVIEW_LENGTH),
        "open": lines <= RESULT_OPEN_LINES,
    }


def transcript_row(message, url):
    """What the transcript shows of one message: its text, its calls, its results."""
    entries = message.tool_calls if isinstance(message.tool_calls, list) else []
    entries = [e for e in entries if isinstance(e, dict)]
    calls, results = [], []
    content = message.content
    if message.role == Message.Role.TOOL and entries:
        results = [result_view(str(e.get("name", "")), e.get("result")) for e in entries]
        content = ""
    elif entries:
        calls = [call_text(str(e.get("name", "")), e.get("arguments")) for e in entries]
        names = ", ".join(dict.fromkeys(str(e.get("name", "")) for e in entries))
        if content == f"Calling {names}.":  # the placeholder chat.turns stores
            content = ""
    return {
        "message": message,
        "url": url,
        "content": content,
        "calls": calls,
        "results": results,
    }


def transcript_page(conversation, before=None, limit=TRANSCRIPT_LIMIT):
    """One page of the transcript: up to `limit` messages before seq `before` (the
    newest when None), in seq order, with links to the older and newer pages.

    One query on the (conversation, seq) index, whatever the conversation's length.
    """
    messages_ = Message.objects.filter(conversation_id=conversation.pk)
    if before is not None:
        messages_ = messages_.filter(seq__lt=before)
    page = list(messages_.order_by("-seq")[:limit])
    page.reverse()
    total = conversation.message_count
    older = newer = None
    if page and page[0].seq > 1:
        older = f"?before={page[0].seq}"
    if page and page[-1].seq < total:
        following = page[-1].seq + limit + 1
        newer = "?" if following > total else f"?before={following}"
    return {
        "rows": [
            transcript_row(m, reverse("admin:chat_message_change", args=[m.pk])) for m in page
        ],
        "first": page[0].seq if page else 0,
        "last": page[-1].seq if page else 0,
        "total": total,
        "older": older,
        "newer": newer,
        "all_messages": (
            reverse("admin:chat_message_changelist") + f"?conversation__id__exact={conversation.pk}"
        ),
    }


def _before(request):
    return as_id(request.GET.get("before"))


class ConversationForm(forms.ModelForm):
    """Titles follow the service's rules (a bad one is a form error, never a 500)."""

    class Meta:
        model = Conversation
        fields = ["owner", "title", "thread_status", "thread_status_reason"]

    def clean_title(self):
        try:
            return services.clean_conversation_title(self.cleaned_data["title"])
        except services.InvalidMessage as error:
            raise forms.ValidationError(str(error.detail)) from None


class TransferForm(forms.Form):
    """The intermediate page of "Transfer to another user": pick the new owner."""

    new_owner = forms.ModelChoiceField(
        queryset=get_user_model()._default_manager.all(),
        widget=AutocompleteSelect(Conversation._meta.get_field("owner"), admin.site),
        label="New owner",
    )


@admin.register(Conversation)
class ConversationAdmin(AutocompleteFilterMedia, admin.ModelAdmin):
    form = ConversationForm
    list_display = ["__str__", "owner", "message_count", "updated_at", "created_at"]
    list_filter = [OwnerFilter, "updated_at"]
    search_fields = ["title", "owner__username"]
    list_select_related = ["owner"]
    autocomplete_fields = ["owner"]
    date_hierarchy = "updated_at"
    show_full_result_count = False
    readonly_fields = ["message_count", "created_at", "updated_at", "messages_link"]
    fields = [
        "owner",
        "title",
        "thread_status",
        "thread_status_reason",
        "message_count",
        "messages_link",
        "created_at",
        "updated_at",
    ]
    change_form_template = "admin/chat/conversation/change_form.html"
    actions = ["transfer_to_another_user"]

    class Media:
        css = {"all": ["chat/admin.css"]}

    def get_search_results(self, request, queryset, search_term):
        """Full-text, as the API's `?search=` (title or a message), or the owner's
        exact username."""
        return _searched(queryset, search_term, owner__username=search_term.strip())

    def get_readonly_fields(self, request, obj=None):
        """The owner is chosen once; moving a conversation is the transfer action."""
        fields = super().get_readonly_fields(request, obj)
        return [*fields, "owner"] if obj is not None else fields

    @admin.display(description="messages")
    def messages_link(self, conversation):
        url = reverse("admin:chat_message_changelist")
        return format_html(
            '<a href="{}?conversation__id__exact={}">All {} messages, newest first</a>',
            url,
            conversation.pk,
            conversation.message_count,
        )

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk is not None:
            context["transcript"] = transcript_page(obj, before=_before(request))
        return super().render_change_form(request, context, add, change, form_url, obj)

    def save_model(self, request, obj, form, change):
        if change:
            # Only the title and the thread's status: a full save would write back a
            # stale message_count.
            services.conversation_update(conversation=obj, title=obj.title)
            services.conversation_set_thread_status(
                conversation=Conversation.objects.get(pk=obj.pk),
                status=obj.thread_status,
                reason=obj.thread_status_reason,
            )
        else:
            super().save_model(request, obj, form, change)

    def delete_model(self, request, obj):
        services.conversation_delete(conversation=obj)

    def delete_queryset(self, request, queryset):
        for conversation in queryset:
            services.conversation_delete(conversation=conversation)

    def get_deleted_objects(self, objs, request):
        objs = list(objs)
        ids = [c.pk for c in objs]
        counts = {
            "conversations": len(objs),
            "messages": Message.objects.filter(conversation_id__in=ids).count(),
            "chat turns": ChatTurn.objects.filter(conversation_id__in=ids).count(),
        }
        return deletion_summary(objs, counts)

    @admin.action(description="Transfer to another user", permissions=["change"])
    def transfer_to_another_user(self, request, queryset):
        """Intermediate page: pick the new owner; then move each conversation with
        its messages and chat turns through `conversation_transfer`."""
        form = TransferForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            new_owner = form.cleaned_data["new_owner"]
            moved = 0
            for conversation in queryset:
                services.conversation_transfer(conversation=conversation, new_owner=new_owner)
                moved += 1
            self.message_user(
                request, f"Transferred {moved} conversation(s) to {new_owner}.", messages.SUCCESS
            )
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Transfer conversations to another user",
            "opts": self.model._meta,
            "form": form,
            "media": self.media + form.media,
            "queryset": queryset.select_related("owner"),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/chat/conversation/transfer.html", context)


def _searched(queryset, search_term, **or_exactly):
    """`queryset.search(search_term)`, or any row matching `or_exactly`; NULs dropped."""
    text = search_term.replace("\x00", "").strip()[:MAX_SEARCH_LENGTH]
    if not text:
        return queryset, False
    found = queryset.search(text)
    if or_exactly:
        found = found | queryset.filter(**or_exactly)
    return found, False


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows of the append-only log: nobody adds, changes or deletes them here."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Message)
class MessageAdmin(AutocompleteFilterMedia, ReadOnlyAdmin):
    """Messages, newest first; filter by conversation and owner."""

    list_display = ["number", "conversation_link", "role", "short_content", "owner", "created"]
    list_display_links = ["number"]
    list_filter = [ConversationFilter, OwnerFilter, "role"]
    search_fields = ["content"]
    list_select_related = ["conversation", "owner"]
    ordering = ["-id"]
    show_full_result_count = False
    fields = [
        "conversation",
        "owner",
        "seq",
        "role",
        "content",
        "tool_calls_pretty",
        "client_id",
        "created_at",
    ]
    readonly_fields = fields

    class Media:
        css = {"all": ["chat/admin.css"]}

    def get_search_results(self, request, queryset, search_term):
        """Full-text, as the API's `GET messages/?search=` (the same index)."""
        return _searched(queryset, search_term)

    @admin.display(description="#", ordering="seq")
    def number(self, message):
        return f"#{message.seq}"

    @admin.display(description="conversation")
    def conversation_link(self, message):
        """The conversation's title, linking to its transcript."""
        url = reverse("admin:chat_conversation_change", args=[message.conversation_id])
        return format_html(
            '<a href="{}">{}</a>', url, Truncator(str(message.conversation)).chars(40)
        )

    @admin.display(description="created at", ordering="id")
    def created(self, message):
        """Date over time, in the admin's formats: narrow enough for 1280 px."""
        at = localtime(message.created_at)
        return format_html(
            '<span class="date">{}</span> <span class="time">{}</span>',
            date_format(at, "DATE_FORMAT"),
            date_format(at, "TIME_FORMAT"),
        )

    @admin.display(description="content")
    def short_content(self, message):
        """The text; for a tool step its calls, for a tool result `name → result`."""
        row = transcript_row(message, url="")
        parts = row["calls"] or [f"{r['name']} → {r['preview']}" for r in row["results"]]
        return Truncator(" ".join(parts) or message.content).chars(PREVIEW_LENGTH)

    @admin.display(description="tool calls")
    def tool_calls_pretty(self, message):
        if message.tool_calls is None:
            return "-"
        return format_html('<pre class="tool-json">{}</pre>', _json(message.tool_calls, indent=2))


@admin.register(ChatTurn)
class ChatTurnAdmin(AutocompleteFilterMedia, ReadOnlyAdmin):
    """Chat turns, for staff debugging a retry: written by chat.turns only."""

    list_display = ["id", "owner", "conversation", "status", "attempts", "created_at"]
    list_filter = [OwnerFilter, ConversationFilter, "status"]
    search_fields = ["owner__username", "client_id"]
    list_select_related = ["owner", "conversation"]
    show_full_result_count = False


@admin.register(MessageFeedback)
class MessageFeedbackAdmin(ReadOnlyAdmin):
    """Thumbs up / down from ChatKit front ends: read-only, written by items.feedback."""

    list_display = ["message", "kind", "owner", "conversation", "created_at"]
    list_filter = ["kind", "created_at"]
    list_select_related = ["message", "owner", "conversation"]
    raw_id_fields = ["owner", "conversation", "message"]
    show_full_result_count = False
