"""Register, token, refresh rotation, logout, me and delete-me through HTTP."""

import pytest
from django.contrib.auth import get_user_model

from chat.models import Conversation, Message
from tasks.models import Task
from testing.factories import DEFAULT_PASSWORD, ConversationFactory, TaskFactory, add_messages

pytestmark = pytest.mark.django_db
User = get_user_model()


def obtain(client, username, password=DEFAULT_PASSWORD):
    return client.post("/api/v1/auth/token/", {"username": username, "password": password})


def test_register_then_token_then_me(anon_client):
    registered = anon_client.post(
        "/api/v1/auth/register/",
        {"username": "alice", "password": "a-long-unusual-passphrase", "email": "a@example.com"},
    )
    assert registered.status_code == 201
    assert set(registered.json()) == {"id", "username", "email"}

    tokens = obtain(anon_client, "alice", "a-long-unusual-passphrase")
    assert tokens.status_code == 200
    assert set(tokens.json()) == {"access", "refresh"}

    anon_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens.json()['access']}")
    me = anon_client.get("/api/v1/auth/me/")
    assert me.status_code == 200
    assert me.json()["username"] == "alice"
    assert set(me.json()) == {"id", "username", "email", "date_joined", "timezone"}
    assert me.json()["timezone"] == "UTC"


def test_register_without_email(anon_client):
    response = anon_client.post(
        "/api/v1/auth/register/", {"username": "bob", "password": "a-long-unusual-passphrase"}
    )

    assert response.status_code == 201
    assert response.json()["email"] == ""


def test_register_taken_username_is_400(anon_client, user):
    response = anon_client.post(
        "/api/v1/auth/register/",
        {"username": user.username, "password": "a-long-unusual-passphrase"},
    )

    assert response.status_code == 400
    assert "username" in response.json()


@pytest.mark.parametrize("password", ["short", "password123", "12345678901"])
def test_register_weak_password_is_400(anon_client, password):
    response = anon_client.post(
        "/api/v1/auth/register/", {"username": "alice", "password": password}
    )

    assert response.status_code == 400
    assert "password" in response.json()
    assert not User.objects.filter(username="alice").exists()


def test_bad_credentials_are_401(anon_client, user):
    response = obtain(anon_client, user.username, "wrong")

    assert response.status_code == 401
    assert {"detail", "code"} <= set(response.json())


def test_refresh_rotates_and_the_old_refresh_is_dead(anon_client, user):
    first = obtain(anon_client, user.username).json()

    rotated = anon_client.post("/api/v1/auth/token/refresh/", {"refresh": first["refresh"]})
    assert rotated.status_code == 200
    assert set(rotated.json()) == {"access", "refresh"}
    assert rotated.json()["refresh"] != first["refresh"]

    reused = anon_client.post("/api/v1/auth/token/refresh/", {"refresh": first["refresh"]})
    assert reused.status_code == 401
    assert reused.json()["code"] == "token_not_valid"

    again = anon_client.post("/api/v1/auth/token/refresh/", {"refresh": rotated.json()["refresh"]})
    assert again.status_code == 200


def test_logout_blacklists_the_refresh_token(anon_client, user):
    tokens = obtain(anon_client, user.username).json()

    logout = anon_client.post("/api/v1/auth/logout/", {"refresh": tokens["refresh"]})
    refresh = anon_client.post("/api/v1/auth/token/refresh/", {"refresh": tokens["refresh"]})
    logout_again = anon_client.post("/api/v1/auth/logout/", {"refresh": tokens["refresh"]})

    assert logout.status_code == 205
    assert refresh.status_code == 401
    assert logout_again.status_code == 401


def test_access_token_is_not_a_refresh_token(anon_client, user):
    tokens = obtain(anon_client, user.username).json()

    response = anon_client.post("/api/v1/auth/token/refresh/", {"refresh": tokens["access"]})

    assert response.status_code == 401


def test_refresh_token_is_not_an_access_token(anon_client, user):
    tokens = obtain(anon_client, user.username).json()
    anon_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['refresh']}")

    response = anon_client.get("/api/v1/tasks/")

    assert response.status_code == 401
    assert response.json()["code"] == "token_not_valid"


def test_tampered_token_is_401(anon_client, user):
    access = obtain(anon_client, user.username).json()["access"]
    anon_client.credentials(HTTP_AUTHORIZATION=f"Bearer {access[:-3]}abc")

    response = anon_client.get("/api/v1/tasks/")

    assert response.status_code == 401


def test_delete_me_removes_the_account_and_all_its_data(api_client, user, other_user):
    TaskFactory(owner=user)
    add_messages(ConversationFactory(owner=user), 3)
    TaskFactory(owner=other_user)

    response = api_client.delete("/api/v1/auth/me/")

    assert response.status_code == 204
    assert not User.objects.filter(pk=user.pk).exists()
    assert not Task.objects.filter(owner_id=user.pk).exists()
    assert not Conversation.objects.filter(owner_id=user.pk).exists()
    assert not Message.objects.filter(owner_id=user.pk).exists()
    assert Task.objects.filter(owner=other_user).count() == 1
    assert api_client.get("/api/v1/auth/me/").status_code == 401


def test_deleted_users_refresh_token_is_401(anon_client, user):
    tokens = obtain(anon_client, user.username).json()
    user.delete()

    response = anon_client.post("/api/v1/auth/token/refresh/", {"refresh": tokens["refresh"]})

    assert response.status_code == 401


def test_token_endpoint_is_throttled(anon_client, user, settings):
    from accounts.throttling import AuthRateThrottle

    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "auth": "3/minute"}
    AuthRateThrottle.THROTTLE_RATES = rates
    try:
        statuses = [obtain(anon_client, user.username, "wrong").status_code for _ in range(4)]
        last = obtain(anon_client, user.username)
    finally:
        AuthRateThrottle.THROTTLE_RATES = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]

    assert statuses[:3] == [401, 401, 401]
    assert statuses[3] == 429
    assert last.status_code == 429
    assert int(last["Retry-After"]) > 0
    assert "detail" in last.json()


def test_user_rate_is_throttled(api_client, settings):
    from core.throttling import UserRateThrottle

    UserRateThrottle.THROTTLE_RATES = {"user": "2/minute", "auth": "20/minute"}
    try:
        statuses = [api_client.get("/api/v1/tasks/").status_code for _ in range(3)]
    finally:
        UserRateThrottle.THROTTLE_RATES = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]

    assert statuses == [200, 200, 429]
