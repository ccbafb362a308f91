"""`manage.py mcp_server`: the task tools (`tasks.tools`) as an MCP server.

    manage.py mcp_server --user alice
        stdio, for a desktop MCP client that starts the server itself; every tool
        acts as alice.
    manage.py mcp_server --transport streamable-http [--host 127.0.0.1] [--port 8001]
        streamable HTTP at /mcp. Each request must carry `Authorization: Bearer
        <access token>`, an access token of this API (POST /api/v1/auth/token/),
        checked exactly as the REST API checks it; the tools act as that token's
        user. No token, or a bad, expired or refresh token, is 401.

Tools keep their registry schema and description. A result with ok=false (a task
that does not exist, bad arguments) is an MCP tool result with isError set.
"""

import inspect
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connections
from mcp.server import MCPServer
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool as MCPTool
from mcp.types import CallToolResult, TextContent
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError

from core.authentication import JWTAuthentication
from tasks import tools

SERVER_NAME = "todo-tasks"
INSTRUCTIONS = (
    "Tools for one user's todo list: add, list, complete, update and delete tasks. "
    "Find a task's id with list_tasks before changing it."
)


def user_of_access_token(raw):
    """The active user an access token of this API belongs to, or None."""
    authentication = JWTAuthentication()
    try:
        validated = authentication.get_validated_token(raw)
        return authentication.get_user(validated), validated
    except (InvalidToken, AuthenticationFailed, TokenError):
        return None, None
    finally:
        connections.close_all()


class AccessTokenVerifier:
    """The MCP SDK's token-verifier hook, accepting this API's access tokens."""

    async def verify_token(self, token: str) -> AccessToken | None:
        user, validated = await sync_to_async(user_of_access_token)(token)
        if user is None:
            return None
        return AccessToken(
            token=token,
            client_id=f"user:{user.pk}",
            scopes=[],
            expires_at=int(validated["exp"]),
            subject=str(user.pk),
        )


def token_owner_id():
    """The user id of the bearer token of the request being served."""
    token = get_access_token()
    if token is None or not token.subject:
        raise ToolError("Not authenticated.")
    return int(token.subject)


def run_tool(owner_id, name, arguments):
    """Run a tool in a worker thread, with a database connection of its own.

    The connection is closed afterwards: tool calls are rare, and a connection left
    open in a thread the server does not manage would outlive its usefulness.
    """
    try:
        owner = get_user_model().objects.filter(pk=owner_id, is_active=True).first()
        if owner is None:
            return tools.error_result("not_authenticated", "The account is gone or inactive.")
        return tools.call_tool(owner=owner, name=name, arguments=arguments)
    finally:
        connections.close_all()


def mcp_tool(tool, owner_id_of):
    """`tool` as an MCP tool acting as `owner_id_of()`, with the registry's schema."""

    async def run(**arguments: Any) -> CallToolResult:
        given = {key: value for key, value in arguments.items() if value is not None}
        result = await sync_to_async(run_tool)(owner_id_of(), tool.name, given)
        return CallToolResult(
            content=[TextContent(type="text", text=tools.encode(result))],
            structured_content=result,
            is_error=not result.get("ok"),
        )

    # One optional keyword per schema property; the registry validates the values.
    run.__signature__ = inspect.Signature(
        [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Any)
            for name in tool.parameters["properties"]
        ]
    )
    run.__name__ = tool.name
    built = MCPTool.from_function(
        run, name=tool.name, description=tool.description, structured_output=False
    )
    return built.model_copy(update={"parameters": tool.parameters})


def build_server(*, user_id=None, issuer_url="http://127.0.0.1:8000"):
    """The MCP server of the task tools.

    With `user_id` every tool acts as that user (stdio). Without it each HTTP
    request must carry an access token of this API and the tools act as its user.
    """
    if user_id is not None:
        return MCPServer(
            SERVER_NAME,
            instructions=INSTRUCTIONS,
            log_level="WARNING",
            tools=[mcp_tool(t, lambda: user_id) for t in tools.TOOLS.values()],
        )
    return MCPServer(
        SERVER_NAME,
        instructions=INSTRUCTIONS,
        log_level="WARNING",
        token_verifier=AccessTokenVerifier(),
        auth=AuthSettings(issuer_url=issuer_url, resource_server_url=None),
        tools=[mcp_tool(t, token_owner_id) for t in tools.TOOLS.values()],
    )


class Command(BaseCommand):
    help = (
        "Serve the task tools over MCP: stdio acting as --user, or streamable HTTP "
        "acting as each request's bearer token's user."
    )

    def add_arguments(self, parser):
        parser.add_argument("--user", help="stdio: the username the tools act as.")
        parser.add_argument("--transport", choices=["stdio", "streamable-http"], default="stdio")
        parser.add_argument("--host", default="127.0.0.1", help="streamable-http: bind address.")
        parser.add_argument("--port", type=int, default=8001, help="streamable-http: port.")
        parser.add_argument(
            "--issuer-url",
            default="http://127.0.0.1:8000",
            help="streamable-http: the URL of this API, which issues the access tokens.",
        )

    def handle(self, *args, **options):
        if options["transport"] == "stdio":
            username = options["user"]
            if not username:
                raise CommandError("--user USERNAME is required with the stdio transport.")
            user = get_user_model().objects.filter(username=username, is_active=True).first()
            if user is None:
                raise CommandError(f"There is no active user {username!r}.")
            connections.close_all()
            build_server(user_id=user.pk).run("stdio")
            return
        if options["user"]:
            raise CommandError(
                "--user is for stdio; over HTTP each request's bearer token says who acts."
            )
        server = build_server(issuer_url=options["issuer_url"])
        server.run("streamable-http", host=options["host"], port=options["port"])
