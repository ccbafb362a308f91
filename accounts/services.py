"""Account rules: refresh-token rotation, logout, deleting an account with its data.

The stock simplejwt refresh checks the blacklist and then inserts into it, so
the same refresh token sent twice at once yields two new pairs; and a token whose
user is gone or whose user_id claim is forged makes it raise. `rotate_refresh_token`
closes both: the old token is blacklisted by an INSERT that the database lets
succeed once, and the user is looked up defensively.

`accounts` sits above the other apps: deleting an account calls each app's own
bulk delete, and no app imports `accounts`.
"""

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.utils import datetime_from_epoch

from chat import services as chat_services
from core.authentication import claimed_user_id
from core.errors import DomainError
from core.timezones import zone_named
from tasks import services as task_services

from .models import Profile

User = get_user_model()


def load_refresh_token(raw):
    try:
        return RefreshToken(raw)
    except TokenError as exc:
        raise InvalidToken({"detail": str(exc), "code": "token_not_valid"}) from None


def _active_user_of(token):
    user_id = claimed_user_id(token.payload)
    user = None if user_id is None else User.objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        raise AuthenticationFailed("No active account found for the given token.", "user_not_found")
    return user


def blacklist_once(token):
    """Blacklist `token`; raise InvalidToken if someone else already did."""
    jti = token[jwt_settings.JTI_CLAIM]
    outstanding = OutstandingToken.objects.filter(jti=jti).first()
    if outstanding is None:
        try:
            with transaction.atomic():
                outstanding = OutstandingToken.objects.create(
                    jti=jti,
                    token=str(token),
                    expires_at=datetime_from_epoch(token["exp"]),
                    user=None,
                )
        except IntegrityError:
            outstanding = OutstandingToken.objects.get(jti=jti)
    try:
        with transaction.atomic():
            BlacklistedToken.objects.create(token=outstanding)
    except IntegrityError:
        raise InvalidToken({"detail": "Token is blacklisted", "code": "token_not_valid"}) from None


@transaction.atomic
def account_delete(*, user):
    """Delete the account with all of its data, in a fixed number of statements.

    Each app deletes its own rows by owner first, so Django's cascade on the user
    finds nothing left to load: the cost does not grow with the data.
    """
    chat_services.chat_delete_all(owner=user)
    task_services.task_delete_all(owner=user)
    user.delete()


def rotate_refresh_token(raw):
    """A new access/refresh pair for a valid refresh token, which is used up."""
    token = load_refresh_token(raw)
    user = _active_user_of(token)
    blacklist_once(token)
    new_refresh = RefreshToken.for_user(user)
    return {"access": str(new_refresh.access_token), "refresh": str(new_refresh)}


class InvalidTimezone(DomainError):
    default_detail = "timezone must be an IANA time zone name, such as Europe/Paris."


def me_update(*, user, timezone=None, email=None):
    """Change the caller's time zone (an IANA name, checked with zoneinfo) and/or email.

    The profile row is created the first time a zone is set (`update_or_create`
    on the unique user: two PATCHes at once leave one row).
    """
    if timezone is not None:
        if zone_named(timezone) is None:
            raise InvalidTimezone()
        profile, _ = Profile.objects.update_or_create(user=user, defaults={"timezone": timezone})
        user.profile = profile
    if email is not None:
        user.email = email
        user.save(update_fields=["email"])
    return user
