"""Liveness and readiness probes on real Gunicorn, with SQLite and a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.ports import free_port
from tests.support.postgres import postgres_server
from tests.support.servers import (
    RunningServer,
    gunicorn_server,
    migrate,
    migrated_sqlite_url,
    server_env,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def migrated() -> Iterator[RunningServer]:
    with gunicorn_server(server_env(migrated_sqlite_url())) as server:
        yield server


def test_liveness(migrated: RunningServer) -> None:
    response = httpx.get(migrated.url("/health"))
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response.headers["cache-control"]


def test_readiness_ok_when_migrated(migrated: RunningServer) -> None:
    response = httpx.get(migrated.url("/health/ready"))
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok", "checks": {"database": "ok", "migrations": "ok"},
    }


def test_probes_answer_kubelet_host_header_but_host_validation_stays(
    migrated: RunningServer,
) -> None:
    """The kubelet probes with Host: <pod IP>:<port>, which is not an allowed host."""
    pod_host = {"Host": "10.244.7.9:8000"}
    live = httpx.get(migrated.url("/health"), headers=pod_host)
    assert live.status_code == 200
    assert live.headers["content-length"] == str(len(live.content))
    ready = httpx.get(migrated.url("/health/ready"), headers=pod_host)
    assert ready.status_code == 200
    assert ready.json()["status"] == "ok"
    # Everything else still refuses a host outside DJANGO_ALLOWED_HOSTS.
    assert httpx.get(migrated.url("/api/menu"), headers=pod_host).status_code == 400


def test_probes_only_answer_get_and_head(migrated: RunningServer) -> None:
    assert httpx.head(migrated.url("/health")).status_code == 200
    assert httpx.post(migrated.url("/health")).status_code == 405
    assert httpx.post(migrated.url("/health/ready")).status_code == 405


def test_readiness_503_names_pending_migrations() -> None:
    with gunicorn_server(server_env()) as server:  # a new SQLite file, never migrated
        assert httpx.get(server.url("/health")).status_code == 200
        response = httpx.get(server.url("/health/ready"))
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["failing"] == ["migrations"]
    assert body["checks"]["database"] == "ok"
    assert "unapplied" in body["checks"]["migrations"]
    assert "auth.0001_initial" in body["checks"]["migrations"]


def test_unreachable_database_fails_readiness_not_liveness() -> None:
    nobody = f"postgres://coffee:pw@127.0.0.1:{free_port()}/coffee"
    with gunicorn_server(server_env(nobody)) as server:
        live = httpx.get(server.url("/health"))
        ready = httpx.get(server.url("/health/ready"))
    assert live.status_code == 200
    assert ready.status_code == 503
    assert ready.json()["failing"] == ["database", "migrations"]
    assert "OperationalError" in ready.json()["checks"]["database"]


@pytest.mark.postgres
def test_readiness_follows_a_real_postgresql_server() -> None:
    """Pending migrations -> 503; migrated -> 200; server stopped -> 503; back -> 200."""
    with postgres_server() as pg:
        env = server_env(pg.create_database("readiness"), GUNICORN_WORKERS="1")
        with gunicorn_server(env) as server:
            ready = server.url("/health/ready")
            first = httpx.get(ready)
            assert first.status_code == 503
            assert first.json()["failing"] == ["migrations"]

            migrate(env)
            assert httpx.get(ready).status_code == 200

            pg.stop()
            down = httpx.get(ready, timeout=15)
            assert down.status_code == 503
            assert down.json()["failing"] == ["database", "migrations"]
            assert httpx.get(server.url("/health")).status_code == 200

            pg.start()
            assert httpx.get(ready, timeout=15).status_code == 200
