"""Production settings: `check --deploy` is clean, and the database settings are as documented.

Commands run in subprocesses with the environment a platform would give, side by
side, once per module. Settings values are read by executing settings.py afresh
under such an environment (it reads nothing but the environment).
"""

import os
import runpy
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from unittest import mock

import pytest
from django.core.exceptions import ImproperlyConfigured

from testing.servers import ROOT, production_env

SECRET = "k3Yq-2vPz8Lw0fRt5uXcBn7mJh4sGd1aVe9oKi6yTr3WqZxCpLnMb"
NEON_DIRECT = "postgres://app:pw@ep-cool-dew-123456.eu-central-1.aws.neon.tech/app?sslmode=require"
NEON_POOLED = (
    "postgres://app:pw@ep-cool-dew-123456-pooler.eu-central-1.aws.neon.tech/app?sslmode=require"
)
CHECK_DEPLOY = ["manage.py", "check", "--deploy", "--fail-level", "WARNING"]
VIEWS = ["accounts.views", "chat.views", "tasks.views"]
IMPORT_ENTRY_POINTS = (
    "import sys, chatproject.wsgi, chatproject.asgi; "
    f"print(','.join(m for m in {VIEWS!r} if m in sys.modules))"
)


def neon_env(**extra):
    """What a Procfile platform with Neon sets; no local test variables."""
    env = production_env(NEON_POOLED, SECRET_KEY=SECRET, ALLOWED_HOSTS="chat.example.com")
    env.pop("SECURE_SSL_REDIRECT")  # production keeps the default: redirect to HTTPS
    env["DJANGO_SETTINGS_MODULE"] = "chatproject.settings"
    env.update({key: str(value) for key, value in extra.items()})
    return env


def load_settings(env):
    """settings.py's names, as a process with environment `env` would have them."""
    with mock.patch.dict(os.environ, env, clear=True):
        return runpy.run_path(str(ROOT / "chatproject" / "settings.py"))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Each command's CompletedProcess, by name."""
    direct_file = tmp_path_factory.mktemp("direct") / "direct.sqlite3"
    cases = {
        "check --deploy": (neon_env(), CHECK_DEPLOY),
        "check --deploy, HSTS off": (neon_env(SECURE_HSTS_SECONDS=0), CHECK_DEPLOY),
        "schema command": (
            neon_env(
                DATABASE_URL="postgres://nobody:x@127.0.0.1:9/unreachable",
                DIRECT_DATABASE_URL=f"sqlite:///{direct_file}",
            ),
            ["manage.py", "createcachetable"],
        ),
        "entry points": (neon_env(), ["-c", IMPORT_ENTRY_POINTS]),
    }

    def execute(case):
        env, args = case
        return subprocess.run(
            [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )

    with ThreadPoolExecutor(len(cases)) as pool:
        results = dict(zip(cases, pool.map(execute, cases.values()), strict=True))
    results["schema command"].direct_file = direct_file
    return results


def test_check_deploy_is_clean_with_production_settings(run):
    result = run["check --deploy"]

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
    assert "WARNINGS" not in result.stdout + result.stderr


def test_a_worker_imports_every_view_as_it_boots_not_in_its_first_request(run):
    """A cold worker's first request would otherwise wait for the imports (1.7 s)."""
    result = run["entry points"]

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [",".join(VIEWS)]


def test_check_deploy_would_catch_a_weakened_setting(run):
    """The check above can fail: turning HSTS off is reported."""
    result = run["check --deploy, HSTS off"]

    assert result.returncode != 0
    assert "security.W004" in result.stdout + result.stderr


def test_production_refuses_to_start_without_a_secret_key():
    env = neon_env()
    del env["SECRET_KEY"]
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY is not set"):
        load_settings(env)


def test_production_settings_harden_cookies_https_and_headers():
    s = load_settings(neon_env())

    assert s["DEBUG"] is False
    assert s["SECURE_SSL_REDIRECT"] is True
    assert s["SECURE_PROXY_SSL_HEADER"] == ("HTTP_X_FORWARDED_PROTO", "https")
    assert s["SESSION_COOKIE_SECURE"] is True and s["CSRF_COOKIE_SECURE"] is True
    assert s["SECURE_HSTS_SECONDS"] == 31536000
    assert s["SECURE_REDIRECT_EXEMPT"] == [r"^healthz$", r"^readyz$"]
    assert s["STORAGES"]["staticfiles"]["BACKEND"] == (
        "whitenoise.storage.CompressedManifestStaticFilesStorage"
    )


def test_database_defaults_to_persistent_checked_connections_with_a_connect_timeout():
    db = load_settings(neon_env(DATABASE_URL=NEON_DIRECT))["DATABASES"]["default"]

    assert db["CONN_MAX_AGE"] == 600
    assert db["CONN_HEALTH_CHECKS"] is True
    assert db["OPTIONS"]["connect_timeout"] == 3
    assert db["OPTIONS"]["sslmode"] == "require"
    assert db["OPTIONS"]["prepare_threshold"] is None
    assert "pool" not in db["OPTIONS"]
    assert db["DISABLE_SERVER_SIDE_CURSORS"] is False


def test_neon_pooled_endpoint_turns_off_server_side_cursors():
    db = load_settings(neon_env())["DATABASES"]["default"]

    assert db["HOST"].endswith("-pooler.eu-central-1.aws.neon.tech")
    assert db["DISABLE_SERVER_SIDE_CURSORS"] is True
    assert db["OPTIONS"]["prepare_threshold"] is None


def test_disable_server_side_cursors_set_explicitly_wins():
    db = load_settings(neon_env(DISABLE_SERVER_SIDE_CURSORS=0))["DATABASES"]["default"]
    assert db["DISABLE_SERVER_SIDE_CURSORS"] is False


def test_db_pool_opts_into_djangos_psycopg_pool_sized_to_the_threads():
    env = neon_env(DB_POOL=1, GUNICORN_THREADS=6, DB_CONNECT_TIMEOUT=2)
    db = load_settings(env)["DATABASES"]["default"]

    assert db["CONN_MAX_AGE"] == 0  # Django refuses a pool with persistent connections
    assert db["OPTIONS"]["pool"] == {"min_size": 1, "max_size": 6, "timeout": 2, "max_idle": 300}
    assert db["OPTIONS"]["connect_timeout"] == 2


def test_schema_commands_use_the_direct_url(run):
    """Release runs migrations over DIRECT_DATABASE_URL, never through the pooler."""
    result = run["schema command"]

    assert result.returncode == 0, result.stderr
    assert result.direct_file.exists()
