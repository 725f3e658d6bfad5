"""Orders and payments on PostgreSQL, through real Gunicorn+Uvicorn (the production database)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.coffee_api import coffee_api, notification, order, order_burst, payment_id_of
from tests.support.fake_provider import FakeProvider
from tests.support.servers import RunningServer

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def server(fake: FakeProvider, postgres_url: str) -> Iterator[RunningServer]:
    with coffee_api(fake, postgres_url) as running:
        yield running


def test_menu_comes_from_the_postgres_migration(client: httpx.Client) -> None:
    drinks = {d["slug"]: d["price"] for d in client.get("/api/menu").json()["drinks"]}
    assert drinks["latte"] == "270.00"
    assert len(drinks) == 6


def test_order_lifecycle_on_postgres(client: httpx.Client, fake: FakeProvider) -> None:
    fake.set_mode("error")
    failed = order(client, "hot-chocolate", 4)
    assert failed.status_code == 502
    order_id = failed.json()["order"]["id"]
    assert client.get(f"/api/orders/{order_id}").json()["status"] == "payment_failed"
    fake.set_mode("ok")
    retried = client.post(f"/api/orders/{order_id}/pay").json()
    assert (retried["status"], retried["total"]) == ("awaiting_payment", "880.00")
    payment = fake.settle(payment_id_of(retried), "succeeded")
    note = notification("payment.succeeded", payment)
    assert client.post("/api/payments/webhook", json=note).status_code == 200
    assert client.post("/api/payments/webhook", json=note).status_code == 409  # replay
    assert client.get(f"/api/orders/{order_id}").json()["status"] == "paid"
    assert fake.requests_by_key[f"order-{order_id}"] == 2


def test_concurrent_orders_on_postgres(client: httpx.Client, server: RunningServer) -> None:
    """Many orders at once across both workers: every one created, paid for, and readable."""
    responses = order_burst(
        server.base_url, [{"drink": "espresso", "quantity": 1 + i % 3} for i in range(60)]
    )
    assert [r.status_code for r in responses] == [201] * 60
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 60
    for order_id in list(ids)[:5]:
        assert client.get(f"/api/orders/{order_id}").json()["status"] == "awaiting_payment"
