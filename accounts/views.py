"""Accounts over HTTP: register, tokens (simplejwt), refresh with rotation, logout, me."""

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer
from rest_framework_simplejwt.views import TokenObtainPairView

from core.parsers import NDJSONParser
from core.renderers import FastJSONRenderer, NDJSONRenderer

from .portability import account_import, export_lines
from .serializers import (
    AccountSerializer,
    MeUpdateSerializer,
    RefreshSerializer,
    RegisterSerializer,
    TokenPairSerializer,
    UserSerializer,
    user_data,
)
from .services import (
    account_delete,
    blacklist_once,
    load_refresh_token,
    me_update,
    rotate_refresh_token,
)
from .throttling import AuthRateThrottle


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
    """Create an account. Throttled per client address (429 with Retry-After)."""

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
        blacklist_once(load_refresh_token(serializer.validated_data["refresh"]))
        return Response(status=status.HTTP_205_RESET_CONTENT)


class MeView(APIView):
    """The caller's account; PATCH sets its time zone or email; DELETE removes it with
    all of its data."""

    @extend_schema(responses={200: UserSerializer})
    def get(self, request):
        """The caller's account."""
        return Response(user_data(request.user))

    @extend_schema(request=MeUpdateSerializer, responses={200: UserSerializer})
    def patch(self, request):
        """Set the caller's time zone (an IANA name) and/or email."""
        serializer = MeUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(user_data(me_update(user=request.user, **serializer.validated_data)))

    @extend_schema(responses={204: OpenApiResponse(description="Account deleted.")})
    def delete(self, request):
        """Delete the caller's account with all of its tasks, conversations and messages."""
        account_delete(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ExportView(APIView):
    """The caller's whole account as NDJSON, streamed."""

    renderer_classes = [FastJSONRenderer, NDJSONRenderer]

    def perform_content_negotiation(self, request, force=False):
        """The body is NDJSON whatever the client accepts; an error is JSON."""
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        responses={(200, "application/x-ndjson"): OpenApiTypes.STR},
        description=(
            "One JSON object a line: the user, then every task, then every "
            "conversation followed by its messages."
        ),
    )
    def get(self, request):
        response = StreamingHttpResponse(
            export_lines(user=request.user), content_type="application/x-ndjson"
        )
        response["Content-Disposition"] = 'attachment; filename="export.ndjson"'
        return response


class ImportCountsSerializer(serializers.Serializer):
    """How many tasks, conversations and messages an import added."""

    tasks = serializers.IntegerField()
    conversations = serializers.IntegerField()
    messages = serializers.IntegerField()


class ImportView(APIView):
    """Add an export's tasks, conversations and messages to the caller's account: all
    or nothing, a 400 naming the first bad line."""

    parser_classes = [NDJSONParser]

    @extend_schema(
        request={"application/x-ndjson": OpenApiTypes.STR},
        responses={201: ImportCountsSerializer},
    )
    def post(self, request):
        counts = account_import(user=request.user, body=request.data)
        return Response(counts, status=status.HTTP_201_CREATED)
