"""The order path's own PostgreSQL connection (coffee.pg) under real Gunicorn+Uvicorn.

On PostgreSQL the drink lookup and the order INSERT of POST /api/orders run on one asyncpg
connection per worker (application_name "coffee-orders"), not on the ORM's threads.
These tests check that path is the one in use, that what it stores is exactly what the ORM
reads back, that every provider failure keeps the order (retry charges once), and that a
PostgreSQL restart costs no failed order.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal

import httpx
import psycopg
import pytest

from tests.support.coffee_api import coffee_api, order, order_burst, payment_id_of
from tests.support.fake_provider import FakeProvider
from tests.support.postgres import PostgresServer, postgres_server
from tests.support.servers import RunningServer

pytestmark = pytest.mark.postgres

TIMEOUT = 1.0


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    """Its own server: one test restarts it."""
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="module")
def database_url(pg: PostgresServer) -> str:
    return pg.create_database("coffee_loop")


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(slow_seconds=3) as provider:
        yield provider


@pytest.fixture(scope="module")
def server(fake: FakeProvider, database_url: str) -> Iterator[RunningServer]:
    with coffee_api(fake, database_url, PAYMENT_PROVIDER_TIMEOUT=str(TIMEOUT)) as running:
        yield running


def row(database_url: str, order_id: str) -> dict[str, object]:
    with psycopg.connect(database_url) as conn:
        cursor = conn.execute("SELECT * FROM coffee_order WHERE id = %s", [uuid.UUID(order_id)])
        names = [c.name for c in cursor.description or []]
        found = cursor.fetchone()
    assert found is not None, f"order {order_id} not stored"
    return dict(zip(names, found, strict=True))


def loop_connections(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        cursor = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'coffee-orders'"
        )
        return int(cursor.fetchone()[0])  # type: ignore[index]


def test_orders_are_stored_over_the_loop_connection_as_the_orm_reads_them(
    client: httpx.Client, server: RunningServer, database_url: str
) -> None:
    responses = order_burst(
        server.base_url, [{"drink": "cappuccino", "quantity": 1 + i % 3} for i in range(40)]
    )
    assert [r.status_code for r in responses] == [201] * 40
    workers = len(server.worker_pids())
    assert 1 <= loop_connections(database_url) <= workers  # one per worker at most, kept
    for response in responses[:5]:
        created = response.json()
        assert client.get(f"/api/orders/{created['id']}").json() == created  # the ORM's reading
        stored = row(database_url, created["id"])
        assert stored["total"] == Decimal(created["total"])
        assert (stored["status"], stored["currency"]) == ("awaiting_payment", "RUB")
        assert stored["payment_id"] == payment_id_of(created)
        assert stored["created_at"] is not None and stored["updated_at"] is not None
        assert stored["created_at"].tzinfo is not None


@pytest.mark.parametrize(
    ("mode", "status"), [("error", 502), ("malformed", 502), ("down", 502), ("slow", 504)]
)
def test_failed_payment_keeps_the_order_and_retry_charges_once(
    client: httpx.Client, fake: FakeProvider, database_url: str, mode: str, status: int
) -> None:
    fake.set_mode(mode)
    response = order(client, "espresso", 2)
    assert response.status_code == status, response.text
    failed = response.json()["order"]
    stored = row(database_url, failed["id"])
    assert (stored["status"], stored["total"]) == ("payment_failed", Decimal("300.00"))
    assert stored["payment_error"] == response.json()["error"]
    fake.set_mode("ok")
    retried = client.post(f"/api/orders/{failed['id']}/pay").json()
    assert retried["status"] == "awaiting_payment"
    key = f"order-{failed['id']}"
    assert fake.payments_for_key(key) == 1  # one payment whatever the number of attempts
    assert sum(1 for p in fake.payments.values() if p["metadata"]["order_id"] == failed["id"]) == 1


def test_unknown_or_unavailable_drink_is_404_on_the_loop_path(client: httpx.Client) -> None:
    response = order(client, "tea")
    assert response.status_code == 404
    assert response.json() == {"error": "no drink 'tea' on the menu", "field": "drink"}


def test_connection_expiry_under_load_fails_no_order(
    pg: PostgresServer, fake: FakeProvider
) -> None:
    """CONN_MAX_AGE=1: each worker replaces its loop connection every second while orders are
    in flight; statements already queued on the old one must still run (no 500, no lost order)."""
    fake.set_mode("ok")
    url = pg.create_database("coffee_expiry") + "?CONN_MAX_AGE=1"
    with coffee_api(fake, url) as server:

        async def load() -> list[int]:
            async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:

                async def client() -> list[int]:
                    statuses = []
                    deadline = time.monotonic() + 3.5
                    while time.monotonic() < deadline:
                        body = {"drink": "latte", "quantity": 1}
                        statuses.append((await http.post("/api/orders", json=body)).status_code)
                    return statuses

                return [s for c in await asyncio.gather(*(client() for _ in range(24))) for s in c]

        statuses = asyncio.run(load())
    assert len(statuses) > 100
    assert set(statuses) == {201}, {s: statuses.count(s) for s in set(statuses)}


def test_postgresql_restart_costs_no_failed_order(
    client: httpx.Client, pg: PostgresServer, server: RunningServer
) -> None:
    assert order(client).status_code == 201  # every worker may now hold a loop connection
    pg.stop()
    pg.start()
    # More orders than workers, one at a time: each worker's kept connection is dead now.
    statuses = [order(client).status_code for _ in range(3 * len(server.worker_pids()))]
    assert statuses == [201] * len(statuses)
