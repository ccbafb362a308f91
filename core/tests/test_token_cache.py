"""Remembered access tokens (core.authentication): cheaper, never more lenient.

A token string that validated once is not decoded again, but it still expires at
its `exp` with simplejwt's usual 401, its user is still read on every request
(deleted or inactive is 401), and a token that fails validation is never remembered.
"""

import time

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.backends import TokenBackend
from rest_framework_simplejwt.tokens import AccessToken

from conftest import client_for
from core.authentication import VALIDATED_TOKENS_KEPT, _validated_token

pytestmark = pytest.mark.django_db

ME = "/api/v1/auth/me/"


@pytest.fixture(autouse=True)
def _forget_tokens():
    _validated_token.cache_clear()
    yield
    _validated_token.cache_clear()


def bearer(token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def assert_401(response, code):
    assert response.status_code == 401, (response.status_code, response.content[:300])
    assert response.json()["code"] == code
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


@pytest.fixture
def decodes(monkeypatch):
    """Tokens PyJWT was asked to decode (through simplejwt's backend)."""
    seen = []
    decode = TokenBackend.decode

    def spy(self, token, verify=True):
        seen.append(token)
        return decode(self, token, verify)

    monkeypatch.setattr(TokenBackend, "decode", spy)
    return seen


def test_remembered_token_is_not_decoded_again(user, decodes):
    client = client_for(user)

    first = client.get(ME)
    second = client.get(ME)

    assert first.status_code == second.status_code == 200
    assert second.json()["username"] == user.username
    assert len(decodes) == 1
    assert _validated_token.cache_info().hits == 1


def test_remembered_token_that_expires_is_401_like_a_token_never_seen(user):
    token = AccessToken.for_user(user)
    token["exp"] = int(time.time()) + 2
    client = bearer(token)
    assert client.get(ME).status_code == 200
    while time.time() < token["exp"]:
        time.sleep(0.05)
    never_seen = AccessToken.for_user(user)
    never_seen["exp"] = token["exp"]

    expired = client.get(ME)
    expired_never_seen = bearer(never_seen).get(ME)

    assert_401(expired, "token_not_valid")
    assert expired.json() == expired_never_seen.json()
    assert expired.json() == {
        "detail": "Given token not valid for any token type",
        "code": "token_not_valid",
    }
    assert _validated_token.cache_info().hits == 1  # it was the remembered one


def test_remembered_token_of_a_deleted_user_is_401(user):
    client = client_for(user)
    assert client.get(ME).status_code == 200

    user.delete()
    response = client.get(ME)

    assert_401(response, "user_not_found")
    assert _validated_token.cache_info().hits == 1


def test_remembered_token_of_an_inactive_user_is_401(user):
    client = client_for(user)
    assert client.get("/api/v1/tasks/").status_code == 200

    type(user).objects.filter(pk=user.pk).update(is_active=False)
    response = client.get("/api/v1/tasks/")

    assert_401(response, "user_inactive")
    assert _validated_token.cache_info().hits == 1


def test_reactivated_user_is_served_again_on_the_remembered_token(user):
    client = client_for(user)
    type(user).objects.filter(pk=user.pk).update(is_active=False)
    assert client.get(ME).status_code == 401

    type(user).objects.filter(pk=user.pk).update(is_active=True)

    assert client.get(ME).status_code == 200


def _flip_signature(token):
    return token[:-2] + ("AA" if not token.endswith("AA") else "BB")


@pytest.mark.parametrize(
    "garble",
    [
        _flip_signature,
        lambda token: token.replace(".", "", 1),
        lambda token: "not-a-jwt",
        lambda token: token[: len(token) // 2],
    ],
    ids=["bad_signature", "two_segments", "not_a_jwt", "truncated"],
)
def test_garbled_token_is_401_and_never_remembered(user, garble, decodes):
    token = garble(str(AccessToken.for_user(user)))
    client = bearer(token)

    responses = [client.get(ME), client.get(ME)]

    for response in responses:
        assert_401(response, "token_not_valid")
    info = _validated_token.cache_info()
    assert (info.currsize, info.hits, info.misses) == (0, 0, 2)
    assert len(decodes) == 2  # checked afresh each time


def test_expired_token_never_seen_is_not_remembered(user):
    token = AccessToken.for_user(user)
    token["exp"] = int(time.time()) - 1

    response = bearer(token).get(ME)

    assert_401(response, "token_not_valid")
    assert _validated_token.cache_info().currsize == 0


def test_each_token_string_is_remembered_for_its_own_user(user, other_user):
    mine, theirs = client_for(user), client_for(other_user)

    answers = [mine.get(ME), theirs.get(ME), mine.get(ME), theirs.get(ME)]

    assert [a.json()["id"] for a in answers] == [user.pk, other_user.pk] * 2
    info = _validated_token.cache_info()
    assert (info.currsize, info.hits, info.maxsize) == (2, 2, VALIDATED_TOKENS_KEPT)
