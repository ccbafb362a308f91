"""The Procfile, run as a platform runs it, answers the API over real HTTP.

For each database route (PostgreSQL directly, and through a PgBouncer in
transaction mode, as Neon's pooled endpoint is) the test makes a new database,
runs the `release:` line against it, starts the `web:` line (gunicorn, DEBUG off)
and walks a client's whole flow. Runs on PostgreSQL only (the second pass of
bin/test); there, anything missing is a failure, not a skip.
"""

import re
import uuid

import pytest

from testing.pgserver import TempPostgres
from testing.servers import HttpClient

pytestmark = pytest.mark.e2e

PASSWORD = "Sturdy-e2e-Passw0rd-5521"


@pytest.fixture(params=["e2e_direct_site", "e2e_pooled_site"], ids=["direct", "pgbouncer"])
def site(request):
    """Each route to the database in turn (fixtures in conftest.py)."""
    return request.getfixturevalue(request.param)


def ok(answer, status=200):
    assert answer.status == status, answer
    assert answer.content_type == "application/json", answer.headers
    assert answer.headers["X-Request-ID"]
    return answer.json()


def test_client_flow_over_http(site):
    """register -> token -> tasks -> conversation -> messages -> /readyz, then the log."""
    client = HttpClient(site.url)
    username = f"e2e-{uuid.uuid4().hex[:8]}"

    assert ok(client.get("/healthz")) == {"status": "ok"}

    user = ok(
        client.post("/api/v1/auth/register/", {"username": username, "password": PASSWORD}), 201
    )
    assert user["username"] == username
    tokens = ok(client.post("/api/v1/auth/token/", {"username": username, "password": PASSWORD}))
    assert ok(client.get("/api/v1/tasks/"), 401)["code"]
    client.token = tokens["access"]
    assert ok(client.get("/api/v1/auth/me/"))["id"] == user["id"]

    created = [
        ok(client.post("/api/v1/tasks/", {"title": f"Task {n}"}), 201)["id"] for n in range(3)
    ]
    done = ok(client.request("PATCH", f"/api/v1/tasks/{created[0]}/", {"completed": True}))
    assert done["completed"] is True
    listed = ok(client.get("/api/v1/tasks/"))
    assert [task["id"] for task in listed["results"]] == created[::-1]
    completed = ok(client.get("/api/v1/tasks/?completed=true"))
    assert [task["id"] for task in completed["results"]] == [created[0]]

    conversation = ok(client.post("/api/v1/conversations/", {"title": "Plans"}), 201)
    messages_url = f"/api/v1/conversations/{conversation['id']}/messages/"
    said = [("user", "add milk"), ("assistant", "Added milk."), ("user", "thanks")]
    client_id = str(uuid.uuid4())
    appended = [
        ok(client.post(messages_url, {"role": role, "content": text, "client_id": client_id}), 201)
        if n == 0
        else ok(client.post(messages_url, {"role": role, "content": text}), 201)
        for n, (role, text) in enumerate(said)
    ]
    assert [message["seq"] for message in appended] == [1, 2, 3]
    again = ok(
        client.post(messages_url, {"role": "user", "content": "add milk", "client_id": client_id})
    )
    assert again["id"] == appended[0]["id"]

    read = ok(client.get(messages_url))["results"]
    assert [(m["seq"], m["role"], m["content"]) for m in read] == [
        (n + 1, role, text) for n, (role, text) in enumerate(said)
    ]
    newer = ok(client.get(messages_url + "?after_seq=1"))["results"]
    assert [m["seq"] for m in newer] == [2, 3]
    assert ok(client.get(f"/api/v1/conversations/{conversation['id']}/"))["message_count"] == 3
    assert ok(client.get("/api/v1/conversations/"))["results"][0]["id"] == conversation["id"]

    refreshed = ok(client.post("/api/v1/auth/token/refresh/", {"refresh": tokens["refresh"]}))
    assert ok(client.post("/api/v1/auth/token/refresh/", {"refresh": tokens["refresh"]}), 401)
    client.token = refreshed["access"]
    request_id = f"e2e-{uuid.uuid4().hex}"
    answer = client.get("/api/v1/tasks/", headers={"X-Request-ID": request_id})
    assert ok(answer)["results"] and answer.headers["X-Request-ID"] == request_id

    assert ok(client.get("/readyz")) == {"status": "ok", "database": "ok", "migrations": "ok"}

    # One line per request in the server's log, with the caller's request id; no secret.
    log = site.log_text()
    assert re.search(rf"GET /api/v1/tasks/ 200 \d+\.\dms request_id={request_id}$", log, re.M)
    assert log.count("POST /api/v1/tasks/ 201 ") >= 3
    for secret in (PASSWORD, *tokens.values(), *refreshed.values()):
        assert secret not in log

    if site.through_bouncer:  # and it really went through PgBouncer
        bouncer_log = TempPostgres.from_env().bouncer_log()
        assert f"login attempt: db={site.database_name} " in bouncer_log


def test_admin_static_files_are_served_with_debug_off(e2e_direct_site):
    client = HttpClient(e2e_direct_site.url)
    login = client.get("/admin/login/")
    assert login.status == 200
    stylesheets = re.findall(rb'href="(/static/admin/css/[^"]+\.css)"', login.body)
    assert stylesheets, login.body[:500]
    # The manifest storage names files by content, so browsers may cache them forever.
    assert all(re.search(rb"\.[0-9a-f]{12}\.css$", href) for href in stylesheets)

    css = client.get(stylesheets[0].decode(), headers={"Accept-Encoding": "gzip"})

    assert css.status == 200
    assert css.headers["Content-Type"].startswith("text/css")
    assert css.headers["Content-Encoding"] == "gzip"
    assert "immutable" in css.headers["Cache-Control"]


def test_api_docs_load_their_assets_from_this_server(e2e_direct_site):
    client = HttpClient(e2e_direct_site.url)
    docs = client.get("/api/docs/", headers={"Accept": "text/html"})
    assert docs.status == 200
    scripts = re.findall(rb'src="([^"]+\.js)"', docs.body)
    assert scripts and all(src.startswith(b"/static/") for src in scripts), scripts
    for src in scripts:
        assert client.get(src.decode(), headers={"Accept": "*/*"}).status == 200


def test_debug_is_off(e2e_direct_site):
    page = HttpClient(e2e_direct_site.url).get("/no-such-page/")
    assert page.status == 404
    assert b"URLconf" not in page.body and b"Traceback" not in page.body
