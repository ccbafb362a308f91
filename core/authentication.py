"""Bearer-token authentication: simplejwt's, hardened against odd user id claims.

A signed token whose `user_id` is text, a list, an object, `true` or `1.5` would
make simplejwt query with it (a 500, or `true` read as user 1). Only a positive
integer, or a string of ASCII digits, is an id; anything else is a 401.

Every API request authenticates, so both steps are made cheap without changing
what they decide (bench/README.md):
- a token string that validated is remembered (a bounded LRU) until its `exp`, so
  its signature and claims are checked once per process, not once per request;
- the user is still read from the database on every request (a deleted or
  deactivated user is refused at once), by a query compiled once
  (`core.compiled`).

This module imports nothing of the project's views: DRF imports authentication
classes while `rest_framework.views` is still loading.
"""

import functools
import time

from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from rest_framework_simplejwt import authentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.utils import get_md5_hash_password

from .compiled import CompiledQuery, Param

MAX_USER_ID = 2**63 - 1


def claimed_user_id(payload):
    """The token's user id claim as a positive integer, or None."""
    value = payload.get(jwt_settings.USER_ID_CLAIM)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 20:
        value = int(value)
    if type(value) is not int or not 0 < value <= MAX_USER_ID:
        return None
    return value


# Distinct token strings remembered per process: a few hundred bytes each.
VALIDATED_TOKENS_KEPT = 4096


@functools.lru_cache(maxsize=VALIDATED_TOKENS_KEPT)
def _validated_token(raw_token):
    """simplejwt's validation of one token string; only successes are remembered."""
    return authentication.JWTAuthentication().get_validated_token(raw_token)


@functools.cache
def _user_by_id():
    user_model = get_user_model()
    field = user_model._meta.get_field(jwt_settings.USER_ID_FIELD)
    return CompiledQuery(user_model.objects.filter(**{field.name: Param("id", field)}))


class JWTAuthentication(authentication.JWTAuthentication):
    """simplejwt's JWTAuthentication, with the same answers, at a fraction of the CPU.

    An unusable user id claim is a 401, never a 500.
    """

    def get_validated_token(self, raw_token):
        token = _validated_token(raw_token)
        if token.payload.get("exp", 0) <= time.time():
            # Expired since it was remembered: simplejwt gives the usual 401.
            return super().get_validated_token(raw_token)
        return token

    def get_user(self, validated_token):
        """simplejwt's checks (exists, active, password unchanged) on a compiled read."""
        user_id = claimed_user_id(validated_token.payload)
        if user_id is None:
            raise InvalidToken(_("Token contained no recognizable user identification"))
        user = _user_by_id().first(id=user_id)
        if user is None:
            raise AuthenticationFailed(_("User not found"), code="user_not_found")
        if jwt_settings.CHECK_USER_IS_ACTIVE and not user.is_active:
            raise AuthenticationFailed(_("User is inactive"), code="user_inactive")
        if jwt_settings.CHECK_REVOKE_TOKEN and validated_token.get(
            jwt_settings.REVOKE_TOKEN_CLAIM
        ) != get_md5_hash_password(user.password):
            raise AuthenticationFailed(
                _("The user's password has been changed."), code="password_changed"
            )
        return user


class JWTAuthenticationScheme(SimpleJWTScheme):
    """Describes this class in the OpenAPI schema as simplejwt's bearer scheme."""

    target_class = "core.authentication.JWTAuthentication"
