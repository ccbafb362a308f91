"""Accounts: register, tokens (simplejwt), refresh with rotation, logout, me.

The stock simplejwt refresh checks the blacklist and then inserts into it, so
the same refresh token sent twice at once yields two new pairs; and a token whose
user is gone or whose user_id claim is forged makes it raise. `rotate_refresh_token`
closes both: the old token is blacklisted by an INSERT that the database lets
succeed once, and the user is looked up defensively.
"""

from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.utils import datetime_from_epoch
from rest_framework_simplejwt.views import TokenObtainPairView

from chat import services as chat_services
from tasks import services as task_services

from .authentication import claimed_user_id
from .throttling import AuthRateThrottle

User = get_user_model()


class UserSerializer(serializers.ModelSerializer):
    # A CharField, not the model's EmailField: the address is optional, and the
    # schema's `format: email` would make the "" of an account without one invalid.
    email = serializers.CharField(read_only=True)

    class Meta:
        model = User
        fields = ["id", "username", "email", "date_joined"]
        read_only_fields = fields


class AccountSerializer(serializers.Serializer):
    """The answer of register: the new account (email may be "")."""

    id = serializers.IntegerField(read_only=True)
    username = serializers.CharField(read_only=True)
    email = serializers.CharField(read_only=True)


class RegisterSerializer(serializers.ModelSerializer):
    password = serializers.CharField(write_only=True, max_length=128, trim_whitespace=False)
    email = serializers.EmailField(required=False, allow_blank=True, default="")

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


def _load_refresh_token(raw):
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


def _blacklist_once(token):
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
    token = _load_refresh_token(raw)
    user = _active_user_of(token)
    _blacklist_once(token)
    new_refresh = RefreshToken.for_user(user)
    return {"access": str(new_refresh.access_token), "refresh": str(new_refresh)}


class PublicAuthView(APIView):
    """An auth endpoint that takes no access token but still answers 401, not 403.

    DRF turns 401 into 403 when a view has no authentication class to name in
    WWW-Authenticate; these views name the Bearer scheme themselves.
    """

    permission_classes = [AllowAny]
    authentication_classes = []

    def get_authenticate_header(self, request):
        return 'Bearer realm="api"'


class RegisterView(PublicAuthView):
    """Create an account. Throttled tightly (scope `auth`)."""

    throttle_classes = [AuthRateThrottle]

    @extend_schema(request=RegisterSerializer, responses={201: AccountSerializer})
    def post(self, request):
        serializer = RegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = serializer.save()
        return Response(
            {"id": user.pk, "username": user.username, "email": user.email},
            status=status.HTTP_201_CREATED,
        )


class TokenView(TokenObtainPairView):
    """Obtain an access/refresh pair for a username and password."""

    serializer_class = TokenObtainPairSerializer
    authentication_classes = []
    throttle_classes = [AuthRateThrottle]


class TokenRefreshView(PublicAuthView):
    """Trade a refresh token for a new pair; the old refresh token is blacklisted."""

    @extend_schema(request=RefreshSerializer, responses={200: TokenPairSerializer})
    def post(self, request):
        serializer = RefreshSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(rotate_refresh_token(serializer.validated_data["refresh"]))


class LogoutView(PublicAuthView):
    """Blacklist a refresh token so it can never be used again.

    The refresh token is proof enough: a client whose access token has expired can
    still log out.
    """

    @extend_schema(
        request=RefreshSerializer, responses={205: OpenApiResponse(description="Logged out.")}
    )
    def post(self, request):
        serializer = RefreshSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        _blacklist_once(_load_refresh_token(serializer.validated_data["refresh"]))
        return Response(status=status.HTTP_205_RESET_CONTENT)


class MeView(APIView):
    """The caller's account; DELETE removes it with all of its data."""

    @extend_schema(responses={200: UserSerializer})
    def get(self, request):
        user = request.user
        return Response(
            {
                "id": user.pk,
                "username": user.username,
                "email": user.email,
                "date_joined": user.date_joined,
            }
        )

    @extend_schema(responses={204: OpenApiResponse(description="Account deleted.")})
    def delete(self, request):
        account_delete(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
