from django.contrib import admin
from django.utils.html import format_html, format_html_join

from .models import ChatTurn, Conversation, Message
from .search import MAX_SEARCH_LENGTH

# A transcript longer than this shows its newest messages only, so a
# 10,000-message conversation renders as fast as a short one.
TRANSCRIPT_LIMIT = 200


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["__str__", "owner", "message_count", "updated_at", "created_at"]
    list_filter = ["updated_at", "created_at"]
    search_fields = ["title", "owner__username"]
    list_select_related = ["owner"]
    raw_id_fields = ["owner"]
    date_hierarchy = "updated_at"
    readonly_fields = ["message_count", "created_at", "updated_at", "transcript"]
    fields = ["owner", "title", "message_count", "created_at", "updated_at", "transcript"]

    def get_search_results(self, request, queryset, search_term):
        """Full-text, as the API's `?search=` (title or a message), or the owner's
        exact username."""
        return _searched(queryset, search_term, owner__username=search_term.strip())

    @admin.display(description="Transcript")
    def transcript(self, conversation):
        """The newest messages in seq order, read-only."""
        if conversation.pk is None:
            return "-"
        newest = list(
            conversation.messages.order_by("-seq").only("seq", "role", "content", "created_at")[
                :TRANSCRIPT_LIMIT
            ]
        )
        newest.reverse()
        note = ""
        if conversation.message_count > len(newest):
            note = format_html(
                "<p>Showing the newest {} of {} messages.</p>",
                len(newest),
                conversation.message_count,
            )
        rows = format_html_join(
            "",
            '<tr class="message"><td>{}</td><td>{}</td>'
            '<td style="white-space: pre-wrap">{}</td><td>{}</td></tr>',
            ((m.seq, m.role, m.content, m.created_at.isoformat()) for m in newest),
        )
        return format_html(
            '{}<table class="transcript"><thead><tr><th>#</th><th>role</th>'
            "<th>content</th><th>at</th></tr></thead><tbody>{}</tbody></table>",
            note,
            rows,
        )


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """Messages are append-only: staff can read them, not edit them."""

    list_display = ["conversation", "seq", "role", "short_content", "owner", "created_at"]
    list_filter = ["role", "created_at"]
    search_fields = ["content"]
    list_select_related = ["conversation", "owner"]
    raw_id_fields = ["conversation", "owner"]
    show_full_result_count = False

    def get_search_results(self, request, queryset, search_term):
        """Full-text, as the API's `GET messages/?search=` (the same index)."""
        return _searched(queryset, search_term)

    @admin.display(description="content")
    def short_content(self, message):
        return message.content[:80]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


def _searched(queryset, search_term, **or_exactly):
    """`queryset.search(search_term)`, or any row matching `or_exactly`; NULs dropped."""
    text = search_term.replace("\x00", "").strip()[:MAX_SEARCH_LENGTH]
    if not text:
        return queryset, False
    found = queryset.search(text)
    if or_exactly:
        found = found | queryset.filter(**or_exactly)
    return found, False


@admin.register(ChatTurn)
class ChatTurnAdmin(admin.ModelAdmin):
    """Chat turns, for staff debugging a retry: read-only, written by chat.turns only."""

    list_display = ["id", "owner", "conversation", "status", "attempts", "created_at"]
    list_filter = ["status", "created_at"]
    search_fields = ["owner__username", "client_id"]
    list_select_related = ["owner", "conversation"]
    raw_id_fields = ["owner", "conversation", "user_message", "assistant_message"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
