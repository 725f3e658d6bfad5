"""Payments through the fake provider: failure modes, idempotent retry, webhook authenticity.

Real Gunicorn+Uvicorn (SQLite) against a real HTTP fake provider; PAYMENT_PROVIDER_TIMEOUT=1.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.coffee_api import coffee_api, notification, order, payment_id_of
from tests.support.fake_provider import FakeProvider
from tests.support.servers import RunningServer

TIMEOUT = 1.0


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(slow_seconds=3) as provider:
        yield provider


@pytest.fixture(scope="module")
def server(fake: FakeProvider) -> Iterator[RunningServer]:
    with coffee_api(fake, PAYMENT_PROVIDER_TIMEOUT=str(TIMEOUT)) as running:
        yield running


def stored(client: httpx.Client, order_id: str) -> dict[str, Any]:
    response = client.get(f"/api/orders/{order_id}")
    assert response.status_code == 200
    return response.json()


def paid_order(client: httpx.Client, fake: FakeProvider) -> tuple[dict[str, Any], str]:
    body = order(client, "latte").json()
    assert body["status"] == "awaiting_payment"
    return body, payment_id_of(body)


def webhook(client: httpx.Client, body: object) -> httpx.Response:
    return client.post("/api/payments/webhook", json=body)


# -- provider failures -------------------------------------------------------------------

@pytest.mark.parametrize(
    ("mode", "status", "message"),
    [
        ("error", 502, "payment provider answered HTTP 500"),
        ("malformed", 502, "payment provider returned malformed JSON"),
        ("down", 502, "payment provider unreachable: cannot connect"),
        ("slow", 504, "payment provider did not answer within 1 s"),
    ],
)
def test_provider_failure_reports_5xx_and_keeps_the_order(
    client: httpx.Client, fake: FakeProvider, mode: str, status: int, message: str
) -> None:
    fake.set_mode(mode)
    started = time.monotonic()
    response = order(client, "espresso", 2)
    elapsed = time.monotonic() - started
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == message
    assert body["order"]["status"] == "payment_failed"
    assert body["order"]["total"] == "300.00"
    assert body["retry"] == f"/api/orders/{body['order']['id']}/pay"
    assert elapsed < TIMEOUT + 1.0  # the app bounds its own outbound call
    kept = stored(client, body["order"]["id"])
    assert kept["status"] == "payment_failed"
    assert kept["payment_error"] == message


def test_retry_after_a_timeout_reuses_the_payment_and_charges_once(
    client: httpx.Client, fake: FakeProvider
) -> None:
    """The slow provider created the payment but answered too late; the retry must not pay twice."""
    fake.set_mode("slow")
    failed = order(client, "flat-white").json()["order"]
    key = f"order-{failed['id']}"
    assert fake.payments_for_key(key) == 1  # created at the provider, unknown to the shop
    fake.set_mode("ok")
    retried = client.post(f"/api/orders/{failed['id']}/pay")
    assert retried.status_code == 200, retried.text
    body = retried.json()
    assert body["status"] == "awaiting_payment"
    assert payment_id_of(body) == fake.payment_by_key[key]
    assert fake.requests_by_key[key] == 2
    assert sum(1 for p in fake.payments.values() if p["metadata"]["order_id"] == failed["id"]) == 1


def test_retry_after_provider_error_creates_the_payment(
    client: httpx.Client, fake: FakeProvider
) -> None:
    fake.set_mode("error")
    failed = order(client, "latte").json()["order"]
    fake.set_mode("ok")
    body = client.post(f"/api/orders/{failed['id']}/pay").json()
    assert body["status"] == "awaiting_payment"
    assert stored(client, failed["id"]) == body
    assert fake.requests_by_key[f"order-{failed['id']}"] == 2


def test_retry_that_fails_again_reports_and_stays_retryable(
    client: httpx.Client, fake: FakeProvider
) -> None:
    fake.set_mode("down")
    failed = order(client, "latte").json()["order"]
    response = client.post(f"/api/orders/{failed['id']}/pay")
    assert response.status_code == 502
    assert response.json()["order"]["status"] == "payment_failed"
    fake.set_mode("ok")
    assert client.post(f"/api/orders/{failed['id']}/pay").json()["status"] == "awaiting_payment"


def test_paying_an_order_that_has_its_payment_asks_the_provider_nothing(
    client: httpx.Client, fake: FakeProvider
) -> None:
    body, _ = paid_order(client, fake)
    again = client.post(f"/api/orders/{body['id']}/pay")
    assert again.status_code == 200
    assert again.json() == body
    assert fake.requests_by_key[f"order-{body['id']}"] == 1


def test_paying_unknown_order_is_404(client: httpx.Client) -> None:
    response = client.post(f"/api/orders/{uuid.uuid4()}/pay")
    assert response.status_code == 404
    assert "no order" in response.json()["error"]


# -- webhook -------------------------------------------------------------------------------

def test_succeeded_notification_marks_the_order_paid(
    client: httpx.Client, fake: FakeProvider
) -> None:
    body, payment_id = paid_order(client, fake)
    payment = fake.settle(payment_id, "succeeded")
    response = webhook(client, notification("payment.succeeded", payment))
    assert response.status_code == 200, response.text
    assert response.json()["order"]["status"] == "paid"
    assert stored(client, body["id"])["status"] == "paid"
    # Paid is final: no retry, no cancellation.
    assert client.post(f"/api/orders/{body['id']}/pay").status_code == 409


def test_canceled_notification_marks_the_order_cancelled(
    client: httpx.Client, fake: FakeProvider
) -> None:
    body, payment_id = paid_order(client, fake)
    payment = fake.settle(payment_id, "canceled")
    response = webhook(client, notification("payment.canceled", payment))
    assert response.status_code == 200
    assert stored(client, body["id"])["status"] == "cancelled"


def test_forged_success_for_a_pending_payment_changes_nothing(
    client: httpx.Client, fake: FakeProvider
) -> None:
    body, payment_id = paid_order(client, fake)
    forged = dict(fake.payments[payment_id], status="succeeded", paid=True)
    response = webhook(client, notification("payment.succeeded", forged))
    assert response.status_code == 409
    assert "provider reports payment status 'pending'" in response.json()["error"]
    assert stored(client, body["id"])["status"] == "awaiting_payment"


def test_replayed_notification_changes_nothing(client: httpx.Client, fake: FakeProvider) -> None:
    body, payment_id = paid_order(client, fake)
    note = notification("payment.succeeded", fake.settle(payment_id, "succeeded"))
    assert webhook(client, note).status_code == 200
    replay = webhook(client, note)
    assert replay.status_code == 409
    assert replay.json()["error"] == "order is already paid; notification ignored"
    late_cancel = webhook(client, notification("payment.canceled", fake.payments[payment_id]))
    assert late_cancel.status_code == 409
    assert stored(client, body["id"])["status"] == "paid"


def test_notification_naming_another_order_changes_nothing(
    client: httpx.Client, fake: FakeProvider
) -> None:
    """A real, succeeded payment of order A presented as the payment of order B."""
    victim, _ = paid_order(client, fake)
    _, payment_id = paid_order(client, fake)
    genuine = fake.settle(payment_id, "succeeded")
    forged = dict(genuine, id=str(uuid.uuid4()), metadata={"order_id": victim["id"]})
    fake.payments[forged["id"]] = dict(genuine, id=forged["id"])  # provider: belongs to A
    response = webhook(client, notification("payment.succeeded", forged))
    assert response.status_code == 409
    assert "does not belong to this order" in response.json()["error"]
    assert stored(client, victim["id"])["status"] == "awaiting_payment"


def test_notification_for_unknown_payment_is_404(client: httpx.Client) -> None:
    note = notification("payment.succeeded", {"id": str(uuid.uuid4()), "status": "succeeded"})
    response = webhook(client, note)
    assert response.status_code == 404
    assert response.json()["field"] == "object.id"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "body"),
        ({"type": "payment", "event": "payment.succeeded", "object": {"id": "x"}}, "type"),
        ({"type": "notification", "event": "refund.succeeded", "object": {"id": "x"}}, "event"),
        ({"type": "notification", "event": "payment.succeeded"}, "object"),
        ({"type": "notification", "event": "payment.succeeded", "object": {}}, "object.id"),
        ({"type": "notification", "event": "payment.succeeded", "object": {"id": "../v3"}},
         "object.id"),
    ],
)
def test_malformed_notification_is_400(client: httpx.Client, body: object, field: str) -> None:
    response = webhook(client, body)
    assert response.status_code == 400
    assert response.json()["field"] == field


def test_notification_that_cannot_be_verified_is_refused_and_changes_nothing(
    client: httpx.Client, fake: FakeProvider
) -> None:
    body, payment_id = paid_order(client, fake)
    note = notification("payment.succeeded", fake.settle(payment_id, "succeeded"))
    fake.set_mode("down")
    response = webhook(client, note)
    assert response.status_code == 502  # provider will deliver it again
    assert response.json()["error"].startswith("cannot verify the notification")
    fake.set_mode("ok")
    assert stored(client, body["id"])["status"] == "awaiting_payment"
    assert webhook(client, note).status_code == 200
    assert stored(client, body["id"])["status"] == "paid"
