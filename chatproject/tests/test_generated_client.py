"""A Python client generated from /api/schema/ works without a cast.

openapi-python-client generates the package `todo_client` from the schema the
server serves; `client_flow.py` (register, token, tasks, a conversation, an
idempotent append, a chat turn with the offline rules agent) must pass
`mypy --strict` against it and then run against a live server. The generator
runs `ruff` on its output, so the venv's bin directory goes on PATH.
"""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import orjson
import pytest
from django.test import Client

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
CONFIG = {
    "project_name_override": "todo-client",
    "package_name_override": "todo_client",
    # The account export and import (NDJSON) as bytes.
    "content_type_overrides": {"application/x-ndjson": "application/octet-stream"},
}


def _run(command, *, cwd, env=None):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **(env or {})}
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd)
    assert result.returncode == 0, f"{command[0]}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """The directory that holds the generated package `todo_client`."""
    root = tmp_path_factory.mktemp("client")
    schema = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    (root / "schema.json").write_bytes(orjson.dumps(orjson.loads(schema.content)))
    (root / "config.json").write_bytes(orjson.dumps(CONFIG))
    result = _run(
        [
            str(BIN / "openapi-python-client"),
            "generate",
            "--path",
            "schema.json",
            "--config",
            "config.json",
            "--output-path",
            "todo_client",
            "--meta",
            "none",
        ],
        cwd=root,
    )
    # Anything the generator could not type (it skips it, with a warning) is a bug.
    assert "Warning" not in result.stdout + result.stderr, result.stdout + result.stderr
    return root


def test_flow_type_checks_with_mypy_strict(generated):
    # The flow is checked strictly; the generated package is read for its types
    # only (its own code has a few strict-mode complaints of the generator's).
    (generated / "mypy.ini").write_text("[mypy-todo_client.*]\nignore_errors = True\n")
    _run(
        [
            str(BIN / "mypy"),
            "--strict",
            "--config-file",
            "mypy.ini",
            "--cache-dir",
            str(generated / ".mypy_cache"),
            str(HERE / "client_flow.py"),
        ],
        cwd=generated,
        env={"MYPYPATH": str(generated)},
    )


@pytest.mark.django_db(transaction=True)
def test_flow_runs_against_a_live_server(generated, live_server, monkeypatch):
    monkeypatch.syspath_prepend(str(generated))
    monkeypatch.syspath_prepend(str(HERE))
    import client_flow

    client_flow.run(live_server.url, username=f"client-{uuid.uuid4().hex[:8]}")
