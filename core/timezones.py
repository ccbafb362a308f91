"""The user's time zone, for the apps that read dates in it (tasks, chat).

The zone is stored by `accounts` (its `Profile`, one-to-one with the user). core
imports no app and no app may import `accounts`, so it is read here through the
reverse one-to-one relation `user.profile`: a user with no profile row, or a
project without `accounts`, is in UTC.
"""

from datetime import UTC
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from django.core.exceptions import ObjectDoesNotExist

DEFAULT_TIMEZONE = "UTC"


def zone_named(name):
    """The ZoneInfo of an IANA name, or None if there is no such zone."""
    if not isinstance(name, str) or not name or name not in _names():
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _names():
    global _NAMES
    if _NAMES is None:
        _NAMES = frozenset(available_timezones())
    return _NAMES


_NAMES = None


def user_timezone_name(user):
    """The IANA name of `user`'s time zone ("UTC" unless they chose one)."""
    try:
        profile = user.profile
    except (AttributeError, ObjectDoesNotExist):
        return DEFAULT_TIMEZONE
    return profile.timezone or DEFAULT_TIMEZONE


def user_timezone(user):
    """`user`'s time zone as a tzinfo (UTC unless they chose one)."""
    return zone_named(user_timezone_name(user)) or UTC
