"""Bad input of every known kind is a 4xx JSON answer, never a 500, and changes nothing."""

import pytest

from chat.models import Message
from testing.api import assert_json_error, post_raw
from testing.factories import ConversationFactory

pytestmark = pytest.mark.django_db


def test_nul_in_json_for_a_json_field_is_400(api_client, user):
    conversation = ConversationFactory(owner=user)
    body = b'{"role": "tool", "content": "ok", "tool_calls": [{"out": "a\\u0000"}]}'

    response = post_raw(api_client, f"/api/v1/conversations/{conversation.pk}/messages/", body)

    assert_json_error(response, 400)
    assert not Message.objects.exists()


def test_out_of_range_integer_in_body_is_400(api_client, user):
    conversation = ConversationFactory(owner=user)
    body = b'{"role": "user", "content": "x", "seq": 99999999999999999999, "client_id": 1e400}'

    response = post_raw(api_client, f"/api/v1/conversations/{conversation.pk}/messages/", body)

    assert response.status_code == 400
