from django.urls import path
from rest_framework.routers import SimpleRouter

from .views import ChatKitView, ChatTurnView, ConversationViewSet, MessageViewSet

router = SimpleRouter(use_regex_path=False)
router.register("conversations", ConversationViewSet, basename="conversation")

messages = MessageViewSet.as_view({"get": "list", "post": "create"})

urlpatterns = [
    *router.urls,
    path("chat/", ChatTurnView.as_view(), name="chat-turn"),
    path("chatkit/", ChatKitView.as_view(), name="chatkit"),
    path(
        "conversations/<int:id>/messages/",
        messages,
        name="conversation-messages",
    ),
]
