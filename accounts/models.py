from django.conf import settings
from django.db import models
from django.db.models.functions import Length
from django.db.models.lookups import GreaterThan

from core.timezones import DEFAULT_TIMEZONE

# The longest IANA zone name is 32 characters (America/Argentina/ComodRivadavia).
TIMEZONE_MAX_LENGTH = 64


class Profile(models.Model):
    """A user's settings: their time zone (an IANA name) for now.

    A user without a row is in UTC. The apps read the zone through
    `core.timezones.user_timezone(user)` (the reverse one-to-one `user.profile`),
    never by importing this model.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile"
    )
    timezone = models.CharField(max_length=TIMEZONE_MAX_LENGTH, default=DEFAULT_TIMEZONE)

    class Meta:
        ordering = ["user_id"]
        constraints = [
            models.CheckConstraint(
                condition=GreaterThan(Length("timezone"), 0), name="profile_timezone_not_blank"
            ),
        ]

    def __str__(self):
        return f"{self.user_id}: {self.timezone}"
