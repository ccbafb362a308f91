"""/healthz and /readyz through the in-process client (API.md, "Operations")."""

import pytest
from django.db import OperationalError, connection
from django.db.migrations.recorder import MigrationRecorder

from chatproject import health


@pytest.fixture(autouse=True)
def _forget_migration_check(monkeypatch):
    """Each test starts as a fresh process would: migrations not yet seen applied."""
    monkeypatch.setattr(health, "_migrations_known_applied", False)


def test_healthz_is_ok_without_touching_the_database(client):
    # No django_db mark: any query here would raise "Database access not allowed".
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-store" in response["Cache-Control"]


@pytest.mark.django_db
def test_readyz_is_ok_when_the_database_answers_and_migrations_are_applied(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"status": "ok", "database": "ok", "migrations": "ok"}
    assert "no-store" in response["Cache-Control"]


@pytest.mark.django_db
def test_readyz_checks_migrations_once_then_costs_one_query(client, django_assert_num_queries):
    assert client.get("/readyz").status_code == 200
    with django_assert_num_queries(1):
        assert client.get("/readyz").status_code == 200


@pytest.mark.django_db
def test_readyz_is_503_naming_an_unapplied_migration(client):
    recorder = MigrationRecorder(connection)
    applied = sorted(name for app, name in recorder.applied_migrations() if app == "chat")
    last = applied[-1]
    recorder.record_unapplied("chat", last)  # rolled back with the test's transaction

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["database"] == "ok"
    assert f"chat.{last}" in body["migrations"]["unapplied"]


@pytest.mark.django_db
def test_readyz_does_not_remember_a_failed_migration_check(client):
    recorder = MigrationRecorder(connection)
    last = sorted(name for app, name in recorder.applied_migrations() if app == "tasks")[-1]
    recorder.record_unapplied("tasks", last)
    assert client.get("/readyz").status_code == 503
    recorder.record_applied("tasks", last)
    assert client.get("/readyz").status_code == 200


@pytest.mark.django_db
def test_readyz_is_503_json_when_the_database_is_unreachable(client, monkeypatch):
    def unreachable(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(connection, "cursor", unreachable)

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "database": "unreachable: OperationalError",
    }


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
@pytest.mark.django_db
def test_probes_need_no_credentials_and_refuse_writes(client, path):
    assert client.get(path, HTTP_AUTHORIZATION="Bearer not-a-token").status_code == 200
    assert client.head(path).status_code == 200
    assert client.post(path).status_code == 405


def test_probes_are_exempt_from_the_https_redirect(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/healthz").status_code == 200
    assert client.get("/api/v1/tasks/").status_code == 301
