from django.urls import path
from rest_framework.routers import SimpleRouter

from .views import (
    ChatKitView,
    ChatTurnView,
    ConversationViewSet,
    MessageSearchView,
    MessageViewSet,
    TurnCancelView,
    TurnEventsView,
    TurnView,
)

router = SimpleRouter(use_regex_path=False)
router.register("conversations", ConversationViewSet, basename="conversation")

messages = MessageViewSet.as_view({"get": "list", "post": "create"})

urlpatterns = [
    *router.urls,
    path("chat/", ChatTurnView.as_view(), name="chat-turn"),
    path("chat/turns/<uuid:client_id>/", TurnView.as_view(), name="chat-turn-detail"),
    path("chat/turns/<uuid:client_id>/events/", TurnEventsView.as_view(), name="chat-turn-events"),
    path("chat/turns/<uuid:client_id>/cancel/", TurnCancelView.as_view(), name="chat-turn-cancel"),
    path("messages/", MessageSearchView.as_view(), name="message-search"),
    path("chatkit/", ChatKitView.as_view(), name="chatkit"),
    path(
        "conversations/<int:id>/messages/",
        messages,
        name="conversation-messages",
    ),
]
