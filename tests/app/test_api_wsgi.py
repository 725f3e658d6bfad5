"""The same async views under Gunicorn's sync worker (WSGI, Django's async_to_sync adapter).

Production serves ASGI; this keeps the WSGI entry (coffee.wsgi, used by bench/app_payments.py
for the sync-worker comparison) honest: a per-request event loop gets its own provider client.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.coffee_api import api_env, notification, order, payment_id_of
from tests.support.fake_provider import FakeProvider
from tests.support.servers import RunningServer, gunicorn_server, migrate


@pytest.fixture(scope="module")
def server(fake: FakeProvider) -> Iterator[RunningServer]:
    env = api_env(fake)
    migrate(env)
    with gunicorn_server(env, extra_args=["-k", "sync", "coffee.wsgi:application"]) as running:
        yield running


def test_order_payment_and_webhook_under_wsgi(server: RunningServer, fake: FakeProvider) -> None:
    with httpx.Client(base_url=server.base_url, timeout=15) as client:
        assert client.get("/api/menu").status_code == 200
        fake.set_mode("error")
        failed = order(client, "latte")
        assert failed.status_code == 502
        order_id = failed.json()["order"]["id"]
        fake.set_mode("ok")
        paid = client.post(f"/api/orders/{order_id}/pay").json()
        assert paid["status"] == "awaiting_payment"
        created = order(client, "espresso", 2)
        assert created.status_code == 201
        note = notification("payment.succeeded", fake.settle(payment_id_of(paid), "succeeded"))
        assert client.post("/api/payments/webhook", json=note).status_code == 200
        assert client.get(f"/api/orders/{order_id}").json()["status"] == "paid"
        assert fake.requests_by_key[f"order-{order_id}"] == 2
