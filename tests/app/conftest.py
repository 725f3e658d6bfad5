"""Session fixtures for the app tests: one scratch PostgreSQL, shared server helpers.

- ``postgres_server``: a real PostgreSQL (tests.support.postgres) for the whole session.
- ``postgres_url``: an empty database on it (session-wide, created once).
- ``fresh_postgres_url``: a new empty database per test (cheap: CREATE DATABASE).
- ``sqlite_env`` / ``migrated_sqlite_env``: production-like server env on a new SQLite file.
- ``fake``: a fake payment provider per module (a module overrides it for other modes);
  ``client``: an HTTP client for the module's ``server`` fixture that puts the provider
  back to "ok" after each test.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import httpx
import pytest

from tests.support.fake_provider import FakeProvider
from tests.support.postgres import PostgresServer
from tests.support.postgres import postgres_server as _postgres_server
from tests.support.servers import RunningServer, migrate, server_env

_db_names = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with _postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    return postgres_server.create_database("coffee_session")


@pytest.fixture
def fresh_postgres_url(postgres_server: PostgresServer) -> str:
    return postgres_server.create_database(f"coffee_test_{next(_db_names)}")


@pytest.fixture
def sqlite_env() -> dict[str, str]:
    """Production-like env (test secret, no SSL redirect) on a new, unmigrated SQLite file."""
    return server_env()


@pytest.fixture
def migrated_sqlite_env(sqlite_env: dict[str, str]) -> dict[str, str]:
    migrate(sqlite_env)
    return sqlite_env


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as provider:
        yield provider


@pytest.fixture
def client(server: RunningServer, fake: FakeProvider) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=15) as http:
        yield http
    fake.set_mode("ok")
