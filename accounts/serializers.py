"""The shapes of the auth endpoints' bodies and answers."""

from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from rest_framework import serializers

from core.fields import StrictCharField
from core.timezones import user_timezone_name, zone_named

from .models import TIMEZONE_MAX_LENGTH

User = get_user_model()


class UserSerializer(serializers.ModelSerializer):
    # A CharField, not the model's EmailField: the address is optional, and the
    # schema's `format: email` would make the "" of an account without one invalid.
    email = serializers.CharField(read_only=True)
    timezone = serializers.CharField(
        read_only=True, help_text="The user's IANA time zone (default UTC)."
    )

    class Meta:
        model = User
        fields = ["id", "username", "email", "date_joined", "timezone"]
        read_only_fields = fields

    def to_representation(self, user):
        return user_data(user)


def user_data(user):
    """The account as `auth/me/` and the export's `user` line show it."""
    return {
        "id": user.pk,
        "username": user.username,
        "email": user.email,
        "date_joined": user.date_joined,
        "timezone": user_timezone_name(user),
    }


class MeUpdateSerializer(serializers.Serializer):
    """PATCH auth/me/: the time zone the chat agent reads dates in, and the email."""

    timezone = StrictCharField(
        required=False,
        max_length=TIMEZONE_MAX_LENGTH,
        help_text="An IANA time zone name, e.g. Europe/Paris.",
    )
    email = serializers.EmailField(required=False, allow_blank=True)

    def validate_timezone(self, value):
        if zone_named(value) is None:
            raise serializers.ValidationError(
                f"{value[:64]!r} is not an IANA time zone name; use one such as "
                "Europe/Paris or America/New_York."
            )
        return value


class AccountSerializer(serializers.Serializer):
    """The answer of register: the new account (email may be "")."""

    id = serializers.IntegerField(read_only=True)
    username = serializers.CharField(read_only=True)
    email = serializers.CharField(read_only=True)


class RegisterSerializer(serializers.ModelSerializer):
    password = serializers.CharField(
        write_only=True,
        max_length=128,
        trim_whitespace=False,
        help_text=(
            "Checked by the server's password rules (by default: at least 8 characters, "
            "not a common password, not all digits, not too like the username)."
        ),
    )
    # No default: its `""` would sit under `format: email` in the schema, which makes
    # the schema invalid; create_user stores a missing address as "".
    email = serializers.EmailField(required=False, allow_blank=True)

    class Meta:
        model = User
        fields = ["id", "username", "password", "email"]
        read_only_fields = ["id"]

    def validate(self, attrs):
        candidate = User(username=attrs["username"], email=attrs.get("email", ""))
        try:
            password_validation.validate_password(attrs["password"], user=candidate)
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"password": list(exc.messages)}) from None
        return attrs

    def create(self, validated_data):
        try:
            with transaction.atomic():
                return User.objects.create_user(**validated_data)
        except IntegrityError:
            raise serializers.ValidationError(
                {"username": ["A user with that username already exists."]}
            ) from None


class RefreshSerializer(serializers.Serializer):
    refresh = serializers.CharField(write_only=True)


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField(read_only=True)
    refresh = serializers.CharField(read_only=True)
