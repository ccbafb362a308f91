"""Attacks on the JWT auth: every forged, stale or misused token is a 401, never a 500.

Each case sends a crafted `Authorization` header (or refresh token) and expects the
API's 401 body `{"detail", "code"}`. Brute force on `auth/token/` is throttled
(429 with Retry-After), and the same refresh token sent twice at once yields one
new pair, not two.
"""

import base64
import json
import time
import uuid
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from conftest import client_for
from tasks.models import Task
from testing.concurrency import run_at_once
from testing.factories import DEFAULT_PASSWORD, TaskFactory, UserFactory

ME = "/api/v1/auth/me/"
TOKEN = "/api/v1/auth/token/"
REFRESH = "/api/v1/auth/token/refresh/"
LOGOUT = "/api/v1/auth/logout/"
REGISTER = "/api/v1/auth/register/"


def b64(data):
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def signing_key():
    return settings.SIMPLE_JWT["SIGNING_KEY"]


def claims(user_id, token_type="access", lifetime=timedelta(minutes=5), **extra):
    now = int(time.time())
    payload = {
        "token_type": token_type,
        "exp": now + int(lifetime.total_seconds()),
        "iat": now,
        "jti": uuid.uuid4().hex,
        "user_id": user_id,
    }
    payload.update(extra)
    return {key: value for key, value in payload.items() if value is not _DROP}


_DROP = object()

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PRIVATE_PEM = RSA_KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)
RSA_PUBLIC_PEM = RSA_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)


NOT_UTF8 = bytes([0xFF, 0xFE])


def unsigned(payload, alg="none"):
    return f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(payload)}."


def hmac_with(secret, payload, alg="HS256"):
    # PyJWT refuses PEM-looking HMAC secrets, as it should; sign by hand for that case.
    import hashlib
    import hmac

    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    signing_input = f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(payload)}"
    key = secret if isinstance(secret, bytes) else secret.encode()
    signature = hmac.new(key, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64(signature)}"


def tampered_user_id(token, new_user_id):
    """The same token with its user_id claim changed and the old signature kept."""
    header, payload, signature = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["user_id"] = new_user_id
    return f"{header}.{b64(data)}.{signature}"


def assert_401(response):
    assert response.status_code == 401, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body.get("detail"), str) and body["detail"]
    assert isinstance(body.get("code"), str) and body["code"]


def bearer(token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


# Tokens that must not authenticate anyone, whoever they name. Each is built for
# `user` (so only the forgery itself makes it invalid) by a function of (user, other).
FORGED_ACCESS_TOKENS = {
    "alg_none": lambda u, o: unsigned(claims(u.pk)),
    "alg_None_mixed_case": lambda u, o: unsigned(claims(u.pk), alg="None"),
    "alg_NONE_upper": lambda u, o: unsigned(claims(u.pk), alg="NONE"),
    "alg_none_with_real_signature_kept": lambda u, o: (
        unsigned(claims(u.pk)) + str(AccessToken.for_user(u)).split(".")[2]
    ),
    "another_hmac_key": lambda u, o: jwt.encode(claims(u.pk), "not-the-server-key" * 3, "HS256"),
    "empty_hmac_key": lambda u, o: hmac_with(b"", claims(u.pk)),
    "rs256_signed_with_attacker_key": lambda u, o: jwt.encode(
        claims(u.pk), RSA_PRIVATE_PEM, "RS256"
    ),
    "hs256_keyed_with_rsa_public_key": lambda u, o: hmac_with(RSA_PUBLIC_PEM, claims(u.pk)),
    "hs512_with_the_real_key": lambda u, o: hmac_with(signing_key(), claims(u.pk), "HS512"),
    "expired": lambda u, o: jwt.encode(
        claims(u.pk, lifetime=timedelta(seconds=-1)), signing_key(), "HS256"
    ),
    "expired_long_ago": lambda u, o: jwt.encode(
        claims(u.pk, lifetime=timedelta(days=-400)), signing_key(), "HS256"
    ),
    "not_yet_valid_nbf": lambda u, o: jwt.encode(
        claims(u.pk, nbf=int(time.time()) + 3600), signing_key(), "HS256"
    ),
    "refresh_token_as_access": lambda u, o: str(RefreshToken.for_user(u)),
    "token_type_missing": lambda u, o: jwt.encode(
        claims(u.pk, token_type=_DROP), signing_key(), "HS256"
    ),
    "token_type_unknown": lambda u, o: jwt.encode(
        claims(u.pk, token_type="admin"), signing_key(), "HS256"
    ),
    "exp_missing": lambda u, o: jwt.encode(claims(u.pk, exp=_DROP), signing_key(), "HS256"),
    "exp_not_a_number": lambda u, o: jwt.encode(
        claims(u.pk, exp="tomorrow"), signing_key(), "HS256"
    ),
    "user_id_forged_keeping_signature": lambda u, o: tampered_user_id(
        str(AccessToken.for_user(u)), o.pk
    ),
    "user_id_forged_with_another_key": lambda u, o: jwt.encode(
        claims(o.pk), "attacker-chosen-key-0123456789abcdef", "HS256"
    ),
    "signature_stripped": lambda u, o: str(AccessToken.for_user(u)).rsplit(".", 1)[0] + ".",
    "signature_flipped": lambda u, o: _flip_last_char(str(AccessToken.for_user(u))),
    "two_segments": lambda u, o: ".".join(str(AccessToken.for_user(u)).split(".")[:2]),
    "four_segments": lambda u, o: str(AccessToken.for_user(u)) + ".e30",
    "garbage": lambda u, o: "not-a-jwt",
    "non_json_header": lambda u, o: b64(NOT_UTF8) + "." + b64(claims(u.pk)) + ".sig",
    "json_array_payload": lambda u, o: hmac_with(signing_key(), [1, 2, 3]),
    "huge_token": lambda u, o: "a" * 6000 + "." + "b" * 6000 + "." + "c" * 100,
    "non_ascii": lambda u, o: "ééé.ììì.òòò",
}

# Tokens signed with the real key whose user_id claim is not a usable id: no 500,
# and never a match on some other user. Reachable only with the key, but a leaked
# key or a future token format must not turn them into server errors.
WEIRD_USER_IDS = {
    "user_id_missing": _DROP,
    "user_id_null": None,
    "user_id_text": "abc",
    "user_id_sql": "1 OR 1=1",
    "user_id_list": [1],
    "user_id_object": {"id": 1},
    "user_id_negative": -1,
    "user_id_zero": 0,
    "user_id_bigint_overflow": 2**63,
    "user_id_huge": 10**30,
    "user_id_float": 1.5,
    "user_id_bool": True,
    "user_id_nul": "1\x00",
    "user_id_empty": "",
}


def _flip_last_char(token):
    return token[:-1] + ("A" if token[-1] != "A" else "B")


@pytest.mark.parametrize("case", sorted(FORGED_ACCESS_TOKENS))
def test_forged_access_token_is_401(case, user, other_user):
    TaskFactory(owner=other_user, title="secret of the other user")
    token = FORGED_ACCESS_TOKENS[case](user, other_user)
    for path in (ME, "/api/v1/tasks/"):
        assert_401(bearer(token).get(path))


@pytest.fixture
def user_one(db):
    """User 1: where `True` or `1.5` would land if the id claim were coerced."""
    model = get_user_model()
    return model.objects.filter(pk=1).first() or UserFactory(id=1)


@pytest.mark.parametrize("case", sorted(WEIRD_USER_IDS))
def test_signed_token_with_unusable_user_id_is_401(case, user_one):
    token = jwt.encode(claims(WEIRD_USER_IDS[case]), signing_key(), "HS256")
    assert_401(bearer(token).get(ME))


@pytest.mark.parametrize("case", sorted(WEIRD_USER_IDS))
def test_signed_refresh_with_unusable_user_id_is_401(case, user_one):
    token = jwt.encode(claims(WEIRD_USER_IDS[case], token_type="refresh"), signing_key(), "HS256")
    assert_401(APIClient().post(REFRESH, {"refresh": token}, format="json"))


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "Bearer  two  spaces",
        "Bearer a b",
        "bearer lowercase-scheme",
        "Basic dXNlcjpwYXNz",
        "Token abc",
        "JWT abc",
        "Bearer " + "x" * 7000,
    ],
)
def test_malformed_authorization_header_is_401(header, user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    assert_401(client.get(ME))


# Not "refresh_token_as_access": that one is a genuine refresh token, which refresh
# and logout rightly accept (test_auth_api covers both).
@pytest.mark.parametrize("case", sorted(set(FORGED_ACCESS_TOKENS) - {"refresh_token_as_access"}))
def test_forged_token_on_refresh_and_logout_is_401(case, user, other_user):
    token = FORGED_ACCESS_TOKENS[case](user, other_user)
    for path in (REFRESH, LOGOUT):
        assert_401(APIClient().post(path, {"refresh": token}, format="json"))


def test_access_token_is_not_a_refresh_token(user):
    access = str(AccessToken.for_user(user))
    assert_401(APIClient().post(REFRESH, {"refresh": access}, format="json"))
    assert_401(APIClient().post(LOGOUT, {"refresh": access}, format="json"))


def test_expired_refresh_token_is_401(user):
    token = RefreshToken.for_user(user)
    token.set_exp(lifetime=-timedelta(seconds=1))
    assert_401(APIClient().post(REFRESH, {"refresh": str(token)}, format="json"))


def test_rotated_refresh_token_is_blacklisted(user):
    refresh = str(RefreshToken.for_user(user))
    first = APIClient().post(REFRESH, {"refresh": refresh}, format="json")
    assert first.status_code == 200
    assert_401(APIClient().post(REFRESH, {"refresh": refresh}, format="json"))
    # The new pair works.
    assert bearer(first.json()["access"]).get(ME).status_code == 200
    second = APIClient().post(REFRESH, {"refresh": first.json()["refresh"]}, format="json")
    assert second.status_code == 200


def test_logged_out_refresh_token_is_dead(user):
    refresh = str(RefreshToken.for_user(user))
    assert APIClient().post(LOGOUT, {"refresh": refresh}, format="json").status_code == 205
    assert_401(APIClient().post(REFRESH, {"refresh": refresh}, format="json"))
    assert_401(APIClient().post(LOGOUT, {"refresh": refresh}, format="json"))


def test_deleted_users_tokens_are_401(user):
    access = str(AccessToken.for_user(user))
    refresh = str(RefreshToken.for_user(user))
    client = bearer(access)
    assert client.delete(ME).status_code == 204
    assert_401(client.get(ME))
    assert_401(client.get("/api/v1/tasks/"))
    assert_401(APIClient().post(REFRESH, {"refresh": refresh}, format="json"))


def test_deleted_user_id_reused_by_nobody(user, other_user):
    """A token for a deleted user never authenticates as whoever is created next."""
    access = str(AccessToken.for_user(user))
    user.delete()
    newcomer = UserFactory()
    assert newcomer.pk != user.pk or pytest.fail("a primary key was reused")
    assert_401(bearer(access).get(ME))


def test_inactive_users_tokens_are_401(user):
    access = str(AccessToken.for_user(user))
    refresh = str(RefreshToken.for_user(user))
    get_user_model().objects.filter(pk=user.pk).update(is_active=False)
    assert_401(bearer(access).get(ME))
    assert_401(APIClient().post(REFRESH, {"refresh": refresh}, format="json"))


def test_forged_user_id_reads_and_writes_nothing_of_the_victim(user, other_user):
    task = TaskFactory(owner=other_user, title="victim's task")
    forged = tampered_user_id(str(AccessToken.for_user(user)), other_user.pk)
    client = bearer(forged)
    assert_401(client.get(f"/api/v1/tasks/{task.pk}/"))
    assert_401(client.patch(f"/api/v1/tasks/{task.pk}/", {"title": "pwned"}, format="json"))
    assert_401(client.delete(f"/api/v1/tasks/{task.pk}/"))
    assert_401(client.delete(ME))
    task.refresh_from_db()
    assert task.title == "victim's task"
    assert get_user_model().objects.filter(pk=other_user.pk).exists()


@pytest.fixture
def fresh_throttle():
    """The auth throttle's counters live in the database cache, which a transactional
    test elsewhere may have left filled (flush does not empty cache tables)."""
    from django.core.cache import caches

    caches["shared"].clear()


def test_brute_force_on_token_is_throttled(user, settings, fresh_throttle):
    rate = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["auth"]
    limit = int(rate.split("/")[0])
    client = APIClient()
    statuses = []
    for attempt in range(limit + 5):
        response = client.post(
            TOKEN, {"username": user.username, "password": f"guess-{attempt}"}, format="json"
        )
        statuses.append(response.status_code)
        if response.status_code == 429:
            break
    assert set(statuses[:-1]) == {401}, statuses
    assert statuses[-1] == 429, statuses
    assert len(statuses) == limit + 1
    assert int(response["Retry-After"]) > 0
    assert response.json()["detail"]
    # While throttled, even the right password gets no token.
    right = client.post(TOKEN, {"username": user.username, "password": DEFAULT_PASSWORD})
    assert right.status_code == 429
    assert "access" not in right.json()


def test_brute_force_is_throttled_per_client_not_per_username(user, settings, fresh_throttle):
    """Spraying many usernames from one address hits the same limit."""
    limit = int(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["auth"].split("/")[0])
    client = APIClient()
    statuses = [
        client.post(
            TOKEN, {"username": f"victim{i}", "password": "123456"}, format="json"
        ).status_code
        for i in range(limit + 2)
    ]
    assert statuses.count(429) == 2, statuses


def test_register_flood_is_throttled(db, settings, fresh_throttle):
    limit = int(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["auth"].split("/")[0])
    client = APIClient()
    statuses = [
        client.post(
            REGISTER, {"username": f"flood{i}", "password": "a-Long-enough-passw0rd"}, format="json"
        ).status_code
        for i in range(limit + 2)
    ]
    assert statuses[:limit] == [201] * limit, statuses
    assert statuses[limit:] == [429, 429], statuses
    assert get_user_model().objects.filter(username__startswith="flood").count() == limit


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_same_refresh_token_twice_at_once_yields_one_pair():
    """Concurrent refreshes of one token: exactly one 200, the rest 401 (no double spend).

    Each thread has its own database connection (transactional test), so on
    PostgreSQL the requests really race inside the database.
    """
    threads_per_round, rounds = 6, 5
    user = UserFactory()
    for _ in range(rounds):
        refresh = str(RefreshToken.for_user(user))

        def attempt(_index, refresh=refresh):
            response = APIClient().post(REFRESH, {"refresh": refresh}, format="json")
            return response.status_code, response.json()

        results, errors = run_at_once(threads_per_round, attempt)
        assert errors == []
        statuses = sorted(status for status, _ in results)
        assert statuses == [200] + [401] * (threads_per_round - 1), results
        winner = next(body for status, body in results if status == 200)
        assert bearer(winner["access"]).get(ME).status_code == 200
        for status, body in results:
            if status == 401:
                assert body["code"] == "token_not_valid", body


def test_owner_cannot_be_set_through_the_body(user, other_user):
    """Mass assignment: an `owner` field in the body is ignored."""
    client = client_for(user)
    response = client.post(
        "/api/v1/tasks/", {"title": "mine", "owner": other_user.pk}, format="json"
    )
    assert response.status_code == 201
    assert Task.objects.get(pk=response.json()["id"]).owner_id == user.pk
