"""Bad input of every known kind is a 4xx JSON answer, never a 500, and changes nothing."""

import pytest

from tasks.models import Task
from testing.api import assert_json_error, post_raw

pytestmark = pytest.mark.django_db


def test_unknown_api_path_is_json_404(api_client):
    assert_json_error(api_client.get("/api/v1/no-such-thing/"), 404)
    assert_json_error(api_client.get("/api/nothing"), 404)


@pytest.mark.parametrize("debug", [False, True])
def test_unknown_api_path_is_json_404_also_with_debug(api_client, settings, debug):
    """With DEBUG on, Django answers an unrouted path with its HTML debug page, and a
    POST to a path missing its final slash with an HTML 500; under /api/ neither."""
    settings.DEBUG = debug
    assert_json_error(api_client.get("/api/v1/no-such-thing/"), 404)
    assert_json_error(api_client.post("/api/no/such/path", {}, format="json"), 404)
    missing_slash = api_client.post("/api/v1/tasks", {"title": "Milk"}, format="json")
    assert_json_error(missing_slash, 404)
    assert missing_slash.json() == {"detail": "Not found. Paths end with a slash: /api/v1/tasks/"}
    assert not Task.objects.exists()
    assert api_client.get("/not-api/").status_code == 404


@pytest.mark.parametrize("debug", [False, True])
def test_djangos_own_error_pages_are_json_under_api(api_client, settings, debug):
    """A Host header not in ALLOWED_HOSTS is refused by Django itself (with DEBUG, on
    its HTML debug page); under /api/ the answer is still JSON."""
    settings.DEBUG = debug
    response = api_client.get("/api/v1/tasks/", HTTP_HOST="evil.example")
    assert_json_error(response, 400)
    assert response.json() == {"detail": "Bad request."}


def test_wrong_method_is_json_405(api_client):
    assert_json_error(api_client.delete("/api/v1/tasks/"), 405)


def test_non_json_body_is_415(api_client):
    response = post_raw(
        api_client, "/api/v1/tasks/", "title=x", "application/x-www-form-urlencoded"
    )

    assert_json_error(response, 415)
    assert not Task.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"title": NaN}',
        b'{"title": Infinity}',
        b'{"title": "\\ud800"}',
        b'{"title": "a\\u0000b"}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"title": "x", "description": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b"}",
        b"\xff\xfe",
    ],
)
def test_malformed_json_is_400(api_client, body):
    response = post_raw(api_client, "/api/v1/tasks/", body)

    assert_json_error(response, 400)
    assert not Task.objects.exists()


@pytest.mark.parametrize("body", [b'["title"]', b'"title"', b"42", b"null"])
def test_top_level_non_object_is_400(api_client, body):
    response = post_raw(api_client, "/api/v1/tasks/", body)

    assert_json_error(response, 400)


def test_body_over_the_limit_is_413(api_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = b'{"title": "' + b"x" * 2000 + b'"}'

    response = post_raw(api_client, "/api/v1/tasks/", body)

    assert_json_error(response, 413)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/tasks/99999999999999999999999/",
        "/api/v1/tasks/9223372036854775808/",
        "/api/v1/tasks/abc/",
        "/api/v1/tasks/-1/",
        "/api/v1/tasks/1%00/",
        "/api/v1/conversations/99999999999999999999/",
        "/api/v1/conversations/99999999999999999999/messages/",
    ],
)
def test_huge_or_non_numeric_ids_are_404(api_client, path):
    assert_json_error(api_client.get(path), 404)


def test_unhandled_error_is_json_500_without_details(api_client, monkeypatch):
    from tasks import views

    def explode(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(views.TaskViewSet, "list", explode)
    api_client.raise_request_exception = False

    response = api_client.get("/api/v1/tasks/")

    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error."}
