"""Bearer-token authentication: simplejwt's, hardened against odd user id claims.

A signed token whose `user_id` is text, a list, an object, `true` or `1.5` would
make simplejwt query with it (a 500, or `true` read as user 1). Only a positive
integer, or a string of ASCII digits, is an id; anything else is a 401.

This module imports nothing of the project's views: DRF imports authentication
classes while `rest_framework.views` is still loading.
"""

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from rest_framework_simplejwt import authentication
from rest_framework_simplejwt.exceptions import InvalidToken
from rest_framework_simplejwt.settings import api_settings as jwt_settings

MAX_USER_ID = 2**63 - 1


def claimed_user_id(payload):
    """The token's user id claim as a positive integer, or None."""
    value = payload.get(jwt_settings.USER_ID_CLAIM)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 20:
        value = int(value)
    if type(value) is not int or not 0 < value <= MAX_USER_ID:
        return None
    return value


class JWTAuthentication(authentication.JWTAuthentication):
    """simplejwt's JWTAuthentication; an unusable user id claim is a 401, never a 500."""

    def get_user(self, validated_token):
        if claimed_user_id(validated_token.payload) is None:
            raise InvalidToken("Token contained no recognizable user identification")
        return super().get_user(validated_token)


class JWTAuthenticationScheme(SimpleJWTScheme):
    """Describes this class in the OpenAPI schema as simplejwt's bearer scheme."""

    target_class = "chatproject.authentication.JWTAuthentication"
