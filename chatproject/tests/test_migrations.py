"""Migrations apply to an empty database and reverse cleanly, on this pass's engine."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def empty_database_url(tmp_path):
    """A URL of a brand-new empty database of the engine this test pass runs on."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    name = f"migrations_{uuid.uuid4().hex[:12]}"
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def manage(database_url, *args):
    env = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": settings.SECRET_KEY}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_migrate_forwards_and_back_to_zero(empty_database_url):
    steps = [
        ("migrate", "--noinput"),
        ("migrate", "accounts", "zero", "--noinput"),
        ("migrate", "chat", "zero", "--noinput"),
        ("migrate", "tasks", "zero", "--noinput"),
        ("migrate", "--noinput"),
    ]
    for step in steps:
        result = manage(empty_database_url, *step)
        assert result.returncode == 0, (step, result.stderr)

    plan = manage(empty_database_url, "showmigrations", "--plan", "chat", "tasks", "accounts")
    assert plan.returncode == 0
    assert "[ ]" not in plan.stdout
    assert "chat.0001_initial" in plan.stdout
    assert "accounts.0001_support_group" in plan.stdout
