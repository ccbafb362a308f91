"""The request log: one line per request with its id, and never a secret in any log."""

import logging
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from testing.servers import production_env

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(
    r"^(?P<method>[A-Z]+) (?P<path>\S+) (?P<status>\d{3}) (?P<ms>\d+\.\d)ms "
    r"request_id=(?P<request_id>\S+)$"
)


class Records(logging.Handler):
    """Keeps every record it sees, formatted as the production handlers would."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.records = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record):
        self.records.append(record)

    def lines(self, logger=None):
        return [r.getMessage() for r in self.records if logger in (None, r.name)]

    def text(self):
        return "\n".join(self.format(r) for r in self.records)


@pytest.fixture
def logs():
    """Everything logged anywhere, including the loggers that do not propagate."""
    handler = Records()
    names = [None, "chatproject.requests", "core.errors", "django.request"]
    loggers = [logging.getLogger(name) for name in names]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


def request_lines(logs):
    return [LINE.match(line) for line in logs.lines("chatproject.requests")]


def test_one_line_per_request_with_method_path_status_duration_and_id(client, logs):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="probe-123.a_b")

    assert response["X-Request-ID"] == "probe-123.a_b"
    [line] = request_lines(logs)
    assert line, logs.lines()
    assert line["method"] == "GET"
    assert line["path"] == "/healthz"
    assert line["status"] == "200"
    assert float(line["ms"]) >= 0
    assert line["request_id"] == "probe-123.a_b"


@pytest.mark.django_db
def test_each_request_gets_its_own_generated_id(client, logs):
    answers = [client.get("/healthz"), client.get("/api/v1/tasks/"), client.get("/nowhere")]

    lines = request_lines(logs)
    assert len(lines) == 3 and all(lines), logs.lines()
    assert [line["status"] for line in lines] == ["200", "401", "404"]
    ids = [answer["X-Request-ID"] for answer in answers]
    assert [line["request_id"] for line in lines] == ids
    assert len(set(ids)) == 3
    assert all(re.fullmatch(r"[0-9a-f]{32}", request_id) for request_id in ids)


@pytest.mark.parametrize("unsafe", ["x" * 65, "two words", "a\tb", "id;rm -rf /", "é"])
def test_an_unsafe_incoming_id_is_replaced(client, logs, unsafe):
    response = client.get("/healthz", HTTP_X_REQUEST_ID=unsafe)

    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])
    [line] = request_lines(logs)
    assert line["request_id"] == response["X-Request-ID"]


def test_a_path_cannot_forge_a_log_line(client, logs):
    client.get("/healthz%0A2024-01-01 INFO chatproject.requests GET /admin/ 200")

    [line] = logs.lines("chatproject.requests")
    assert "\n" not in line
    assert LINE.match(line)["path"].startswith("/healthz%0A2024-01-01%20INFO")


def test_an_oversized_body_is_logged_as_413(client, logs, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10
    response = client.post("/api/v1/tasks/", data="x" * 11, content_type="application/json")

    assert response.status_code == 413
    [line] = request_lines(logs)
    assert line["status"] == "413"
    assert line["request_id"] == response["X-Request-ID"]


@pytest.mark.django_db
def test_passwords_and_tokens_never_reach_any_log(client, logs, monkeypatch):
    password = "Unguessable-Passw0rd-93817"
    register = client.post(
        "/api/v1/auth/register/",
        {"username": "logcheck", "password": password},
        content_type="application/json",
    )
    assert register.status_code == 201
    tokens = client.post(
        "/api/v1/auth/token/",
        {"username": "logcheck", "password": password},
        content_type="application/json",
    ).json()
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {tokens['access']}"}
    client.get(f"/api/v1/tasks/?token={tokens['access']}&password={password}", **bearer)
    client.post(
        "/api/v1/auth/token/",
        {"username": "logcheck", "password": password + "-wrong"},
        content_type="application/json",
    )
    client.post(
        "/api/v1/auth/token/refresh/",
        {"refresh": tokens["refresh"]},
        content_type="application/json",
    )
    client.get("/api/v1/tasks/", HTTP_AUTHORIZATION=f"Bearer {tokens['access']}x")

    # A database outage logs a warning and a 503 line: still nothing secret.
    from django.db import OperationalError

    from tasks import views

    def unreachable(*args, **kwargs):
        raise OperationalError("connection to server failed: Connection refused")

    monkeypatch.setattr(views.TaskViewSet, "list", unreachable)
    assert client.get("/api/v1/tasks/", **bearer).status_code == 503

    text = logs.text()
    assert len(request_lines(logs)) == 7
    for secret in (password, tokens["access"], tokens["refresh"]):
        assert secret not in text
    assert "database unavailable" in text


SCRIPT = textwrap.dedent(
    """
    import django
    django.setup()

    import chatproject.health
    import accounts.views

    def broken(request):
        raise RuntimeError("boom in a page")

    def broken_api(self, request, *args, **kwargs):
        raise RuntimeError("boom in the API")

    chatproject.health.healthz = broken  # before the URLconf is first loaded
    accounts.views.RegisterView.initial = broken_api

    from django.test import Client

    client = Client(raise_request_exception=False, HTTP_HOST="localhost")
    assert client.get("/healthz", HTTP_X_REQUEST_ID="page-err-1").status_code == 500
    answer = client.post(
        "/api/v1/auth/register/",
        {"username": "u", "password": "p"},
        content_type="application/json",
        HTTP_X_REQUEST_ID="api-err-2",
    )
    assert answer.status_code == 500, answer.content
    assert answer.json() == {"detail": "Internal server error."}
    """
)


def test_errors_go_to_stderr_with_traceback_and_request_lines_to_stdout(tmp_path):
    """In a production process: the two streams the platform collects."""
    env = production_env("", SQLITE_PATH=tmp_path / "unused.sqlite3")
    env["DJANGO_SETTINGS_MODULE"] = "chatproject.settings"
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr

    out_lines = [line.split(" chatproject.requests ")[1] for line in result.stdout.splitlines()]
    assert [LINE.match(line)["request_id"] for line in out_lines] == ["page-err-1", "api-err-2"]
    assert "Traceback" not in result.stdout

    assert result.stderr.count("Traceback (most recent call last)") == 2
    assert "RuntimeError: boom in a page" in result.stderr
    assert "RuntimeError: boom in the API" in result.stderr
    # Every error line says which request it belongs to, even Django's own
    # "Internal Server Error" line, written after the middleware returned.
    assert "Internal Server Error: /healthz request_id=page-err-1" in result.stderr
    assert "unhandled error request_id=api-err-2" in result.stderr
    assert "Internal Server Error: /api/v1/auth/register/ request_id=api-err-2" in result.stderr
