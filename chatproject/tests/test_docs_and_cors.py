"""API docs with no third-party assets; the schema is served; CORS from the environment."""

import re

import pytest
from django.test import Client


@pytest.mark.django_db
def test_docs_page_loads_only_local_assets():
    html = Client().get("/api/docs/").content.decode()

    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert urls, html[:500]
    assert all(not u.startswith(("http:", "https:", "//")) for u in urls), urls
    assert "/api/schema/" in html


@pytest.mark.django_db
def test_schema_is_openapi_3_with_every_contract_path():
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/json")

    schema = response.json()
    assert schema["openapi"].startswith("3.")
    expected = {
        "/api/v1/auth/register/",
        "/api/v1/auth/token/",
        "/api/v1/auth/token/refresh/",
        "/api/v1/auth/logout/",
        "/api/v1/auth/me/",
        "/api/v1/tasks/",
        "/api/v1/tasks/{id}/",
        "/api/v1/conversations/",
        "/api/v1/conversations/{id}/",
        "/api/v1/conversations/{id}/messages/",
    }
    assert expected <= set(schema["paths"])


@pytest.mark.django_db
def test_cors_allows_only_configured_origins(settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    client = Client()

    allowed = client.options(
        "/api/v1/tasks/",
        HTTP_ORIGIN="https://app.example.com",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
    )
    denied = client.options(
        "/api/v1/tasks/",
        HTTP_ORIGIN="https://evil.example.com",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
    )

    assert allowed["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "Access-Control-Allow-Origin" not in denied
