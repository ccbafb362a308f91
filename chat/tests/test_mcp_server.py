"""The MCP server (`manage.py mcp_server`) through the MCP SDK's own client.

stdio: the real command in a subprocess, acting as --user. Streamable HTTP: the
server's ASGI app under uvicorn on loopback, with bearer tokens of this API. Each
test then checks the result through the REST API, as the right user only.
"""

import contextlib
import os
import sqlite3
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import anyio
import httpx2
import pytest
import uvicorn
from django.core.management import CommandError, call_command
from django.db import connection
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts.models import Profile
from tasks.management.commands.mcp_server import build_server
from tasks.models import Task
from testing.factories import TaskFactory
from testing.pgserver import free_port

ROOT = Path(__file__).resolve().parents[2]
TOOL_NAMES = {"add_task", "list_tasks", "complete_task", "delete_task", "update_task"}

pytestmark = pytest.mark.django_db(transaction=True)


@contextlib.contextmanager
def database_for_subprocess(tmp_path):
    """Environment that points a subprocess at the test database (committed data).

    On SQLite the in-memory test database is copied to a file for the subprocess
    and copied back when it is done.
    """
    if connection.vendor == "postgresql":
        db = connection.settings_dict
        url = (
            f"postgres://{quote(db['USER'])}:{quote(db['PASSWORD'])}@{db['HOST']}:{db['PORT']}"
            f"/{db['NAME']}"
        )
        yield {"DATABASE_URL": url}
        return
    path = tmp_path / "subprocess.sqlite3"
    connection.ensure_connection()
    with contextlib.closing(sqlite3.connect(path)) as target:
        connection.connection.backup(target)
    yield {"DATABASE_URL": "", "SQLITE_PATH": str(path)}
    with contextlib.closing(sqlite3.connect(path)) as source:
        source.backup(connection.connection)


def subprocess_env(database_env):
    names = ("SECRET_KEY", "DEBUG", "DJANGO_SETTINGS_MODULE", "JWT_SIGNING_KEY")
    env = {name: os.environ[name] for name in names if name in os.environ}
    return {**env, **database_env}


def test_stdio_server_lists_tools_and_adds_a_task_as_the_given_user(
    tmp_path, user, other_user, api_client, other_client
):
    async def session(env):
        params = StdioServerParameters(
            command=sys.executable,
            args=["manage.py", "mcp_server", "--user", user.username],
            env=env,
            cwd=str(ROOT),
        )
        async with Client(params, read_timeout_seconds=30) as client:
            listed = await client.list_tools()
            added = await client.call_tool("add_task", {"title": "Buy milk"})
            missing = await client.call_tool("complete_task", {"task_id": 999999})
        return listed, added, missing

    with database_for_subprocess(tmp_path) as database_env:
        listed, added, missing = anyio.run(session, subprocess_env(database_env))

    assert {tool.name for tool in listed.tools} == TOOL_NAMES
    add = next(tool for tool in listed.tools if tool.name == "add_task")
    assert add.input_schema["required"] == ["title"]
    assert add.description.startswith("Add a task")
    assert added.is_error is False
    assert added.structured_content["task"]["title"] == "Buy milk"
    assert missing.is_error is True
    assert missing.structured_content["error"] == "not_found"
    mine = api_client.get("/api/v1/tasks/").json()["results"]
    assert [t["title"] for t in mine] == ["Buy milk"]
    assert other_client.get("/api/v1/tasks/").json()["results"] == []


def test_stdio_command_needs_an_existing_user(user):
    with pytest.raises(CommandError, match="--user"):
        call_command("mcp_server")
    with pytest.raises(CommandError, match="no active user"):
        call_command("mcp_server", "--user", "nobody")
    with pytest.raises(CommandError, match="bearer token"):
        call_command("mcp_server", "--transport", "streamable-http", "--user", user.username)


@pytest.fixture
def mcp_url():
    """The streamable-HTTP MCP server, as `manage.py mcp_server` builds it, on loopback."""
    port = free_port()
    app = build_server().streamable_http_app(host="127.0.0.1")
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the MCP server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/mcp"
    server.should_exit = True
    thread.join(10)


def http_session(url, token, calls):
    """Run `calls` (name, arguments) over streamable HTTP with `token`; their results."""

    async def session():
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
            transport = streamable_http_client(url, http_client=http)
            async with Client(transport, read_timeout_seconds=30) as client:
                listed = await client.list_tools()
                results = [await client.call_tool(name, args) for name, args in calls]
        return listed, results

    return anyio.run(session)


def status_of(url, token):
    """The HTTP status of a bare MCP POST with `token`."""
    headers = {"Accept": "application/json, text/event-stream"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    return httpx2.post(url, json=body, headers=headers, timeout=10).status_code


def test_http_with_a_valid_token_acts_as_the_tokens_user(
    mcp_url, user, other_user, api_client, other_client
):
    theirs = TaskFactory(owner=other_user, title="Their task")

    listed, (added, listing, touched) = http_session(
        mcp_url,
        AccessToken.for_user(user),
        [
            ("add_task", {"title": "Buy milk"}),
            ("list_tasks", {"status": "pending"}),
            ("delete_task", {"task_id": theirs.id}),
        ],
    )

    assert {tool.name for tool in listed.tools} == TOOL_NAMES
    assert added.is_error is False
    assert [t["title"] for t in listing.structured_content["tasks"]] == ["Buy milk"]
    assert touched.is_error is True
    assert touched.structured_content["error"] == "not_found"
    assert Task.objects.filter(pk=theirs.pk).exists()
    assert [t["title"] for t in api_client.get("/api/v1/tasks/").json()["results"]] == ["Buy milk"]
    assert [t["title"] for t in other_client.get("/api/v1/tasks/").json()["results"]] == [
        "Their task"
    ]


def test_http_with_another_users_token_acts_as_that_user(mcp_url, user, other_user, api_client):
    http_session(mcp_url, AccessToken.for_user(other_user), [("add_task", {"title": "Theirs"})])

    assert api_client.get("/api/v1/tasks/").json()["results"] == []
    assert Task.objects.get().owner == other_user


@pytest.mark.parametrize("kind", ["none", "garbage", "refresh", "inactive user"])
def test_http_without_a_valid_access_token_is_401(mcp_url, user, kind):
    if kind == "inactive user":
        token = str(AccessToken.for_user(user))
        user.is_active = False
        user.save()
    else:
        token = {"none": None, "garbage": "not-a-jwt", "refresh": RefreshToken.for_user(user)}[kind]

    assert status_of(mcp_url, token) == 401
    assert not Task.objects.exists()


@pytest.mark.parametrize(
    "zone, stored_due, next_due",
    [
        # 17:00 in New York is 22:00 UTC in March and 21:00 UTC in April (daylight time).
        ("America/New_York", "2026-03-06T22:00:00Z", "2026-04-06T21:00:00Z"),
        ("Asia/Tokyo", "2026-03-06T08:00:00Z", "2026-04-06T08:00:00Z"),
    ],
)
def test_http_tools_take_dates_in_the_users_zone_priorities_tags_and_repeats(
    mcp_url, user, api_client, zone, stored_due, next_due
):
    Profile.objects.create(user=user, timezone=zone)
    TaskFactory(owner=user, title="Undated")

    listed, (added, due_soon, tagged) = http_session(
        mcp_url,
        AccessToken.for_user(user),
        [
            (
                "add_task",
                {
                    "title": "Pay rent",
                    "due_at": "2026-03-06T17:00:00",
                    "priority": "high",
                    "tags": ["Home", "bills"],
                    "repeat": "monthly",
                },
            ),
            (
                "list_tasks",
                {
                    "status": "pending",
                    "due_after": "2026-03-06T00:00:00",
                    "due_before": "2026-03-07T00:00:00",
                    "order": "due",
                },
            ),
            ("list_tasks", {"tags": ["home"], "priority": "high"}),
        ],
    )

    schemas = {tool.name: tool.input_schema["properties"] for tool in listed.tools}
    assert {"due_at", "priority", "tags", "repeat"} <= set(schemas["add_task"])
    assert {"due_at", "priority", "tags", "repeat"} <= set(schemas["update_task"])
    assert {"priority", "tags", "due_after", "due_before", "order"} <= set(schemas["list_tasks"])
    task = added.structured_content["task"]
    assert task["due_at"] == stored_due
    assert (task["priority"], task["tags"], task["repeat"]) == (
        "high",
        ["home", "bills"],
        "monthly",
    )
    assert [t["id"] for t in due_soon.structured_content["tasks"]] == [task["id"]]
    assert [t["id"] for t in tagged.structured_content["tasks"]] == [task["id"]]

    _, (done, again) = http_session(
        mcp_url,
        AccessToken.for_user(user),
        [("complete_task", {"task_id": task["id"]}), ("complete_task", {"task_id": task["id"]})],
    )

    assert done.is_error is False and again.structured_content["already_completed"] is True
    pending = api_client.get("/api/v1/tasks/?completed=false&ordering=due_at").json()["results"]
    assert [t["title"] for t in pending] == ["Pay rent", "Undated"]
    assert pending[0]["due_at"] == next_due


@pytest.mark.parametrize(
    "zone, moved_due",
    [("America/New_York", "2026-03-09T13:00:00Z"), ("Asia/Tokyo", "2026-03-09T00:00:00Z")],
)
def test_http_update_task_moves_a_due_date_given_in_the_users_zone(
    mcp_url, user, other_user, zone, moved_due
):
    Profile.objects.create(user=user, timezone=zone)
    task = TaskFactory(owner=user, title="Call mom", due_at=datetime(2026, 3, 6, 22, tzinfo=UTC))
    theirs = TaskFactory(owner=other_user, title="Theirs", due_at=task.due_at)

    _, (moved, refused) = http_session(
        mcp_url,
        AccessToken.for_user(user),
        [
            ("update_task", {"task_id": task.pk, "due_at": "2026-03-09T09:00:00"}),
            ("update_task", {"task_id": theirs.pk, "due_at": "2026-03-09T09:00:00"}),
        ],
    )

    assert moved.structured_content["task"]["due_at"] == moved_due
    task.refresh_from_db()
    assert task.due_at.isoformat().replace("+00:00", "Z") == moved_due
    assert refused.structured_content["error"] == "not_found"
    theirs.refresh_from_db()
    assert theirs.due_at == datetime(2026, 3, 6, 22, tzinfo=UTC)
