"""Pure pieces of the payment flow, and the provider client's connection pool over real HTTP."""

from __future__ import annotations

import asyncio
import os
import sys
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "app"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coffee_payment.settings")
os.environ.setdefault("RUN_MODE", "development")

import django

django.setup()

from coffee import orders, payments, webhook  # noqa: E402
from coffee.models import Order  # noqa: E402
from coffee.provider_pool import LifoTransport  # noqa: E402
from coffee.validation import Notification  # noqa: E402

from tests.support.fake_provider import FakeProvider  # noqa: E402


@pytest.mark.parametrize(
    ("addr", "allowed", "ok"),
    [
        ("203.0.113.7", [], True),
        ("185.71.76.3", ["185.71.76.0/27", "77.75.156.11"], True),
        ("77.75.156.11", ["185.71.76.0/27", "77.75.156.11"], True),
        ("10.0.0.1", ["185.71.76.0/27"], False),
        ("not-an-ip", ["0.0.0.0/0"], False),
        ("2a02:5180::1", ["2a02:5180::/32"], True),
    ],
)
def test_webhook_ip_allowlist(addr: str, allowed: list[str], ok: bool) -> None:
    assert webhook.ip_allowed(addr, allowed) is ok


def test_order_total_rounds_to_kopecks() -> None:
    assert orders.order_total(Decimal("270.00"), 3) == Decimal("810.00")
    assert orders.order_total(Decimal("0.335"), 3) == Decimal("1.01")


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"id": "x"},
        {"id": "x", "status": "pending", "amount": {"value": "abc", "currency": "RUB"}},
        {"id": "", "status": "pending", "amount": {"value": "1", "currency": "RUB"}},
    ],
)
def test_parse_payment_rejects_what_it_cannot_use(body: object) -> None:
    with pytest.raises(payments.ProviderBadResponse):
        payments.parse_payment(body)


def test_mismatch_names_the_reason() -> None:
    order = Order(id="6f1f8c38-4a0e-4a43-9d0d-3b8f2f9e3c11", total=Decimal("540"), currency="RUB")
    note = Notification("payment.succeeded", "p1", "succeeded", str(order.id))
    good = payments.Payment("p1", "succeeded", Decimal("540.00"), "RUB", "", str(order.id))
    assert webhook.mismatch(note, good, order) is None
    cases = {
        "belong": good.__class__(**{**good.__dict__, "order_id": "other"}),
        "amount": good.__class__(**{**good.__dict__, "amount": Decimal("1.00")}),
        "'pending'": good.__class__(**{**good.__dict__, "status": "pending"}),
    }
    for word, payment in cases.items():
        assert word in (webhook.mismatch(note, payment, order) or "")


def test_pool_reuses_one_connection_and_survives_a_provider_restart() -> None:
    """Keep-alive reuse, and a pooled connection the provider closed is retried on a new one."""

    async def scenario(fake: FakeProvider) -> list[int]:
        transport = LifoTransport(
            max_connections=4, keepalive_expiry=30, ssl_context=httpx.create_ssl_context()
        )
        async with httpx.AsyncClient(
            base_url=fake.url, auth=("test-shop", "test-secret"), transport=transport
        ) as client:
            statuses = []
            for i in range(3):
                response = await client.post(
                    "/v3/payments",
                    json={"amount": {"value": "1.00", "currency": "RUB"}},
                    headers={"Idempotence-Key": f"pool-{i}"},
                )
                statuses.append(response.status_code)
            assert len(transport._pool._idle) == 1  # one connection served all three
            await asyncio.to_thread(fake.set_mode, "down")
            await asyncio.to_thread(fake.set_mode, "ok")  # same port, old connection now dead
            again = await client.post(
                "/v3/payments",
                json={"amount": {"value": "1.00", "currency": "RUB"}},
                headers={"Idempotence-Key": "pool-after-restart"},
            )
            statuses.append(again.status_code)
            return statuses

    with FakeProvider() as fake:
        assert asyncio.run(scenario(fake)) == [200, 200, 200, 200]
        assert fake.requests_by_key["pool-after-restart"] == 1  # not sent twice


def test_payment_settings_defaults_and_values() -> None:
    from coffee.conf import read_payment_settings

    defaults = read_payment_settings({})
    assert (defaults.provider_timeout, defaults.currency, defaults.menu_cache_seconds) == (
        5.0,
        "RUB",
        5.0,
    )
    custom = read_payment_settings(
        {
            "PAYMENT_PROVIDER_URL": "https://api.yookassa.ru/",
            "PAYMENT_PROVIDER_TIMEOUT": "2.5",
            "PAYMENT_CURRENCY": "eur",
            "PAYMENT_WEBHOOK_ALLOWED_IPS": "185.71.76.0/27, 77.75.156.11",
            "MENU_CACHE_SECONDS": "0",
        }
    )
    assert custom.provider_url == "https://api.yookassa.ru"
    assert (custom.provider_timeout, custom.currency, custom.menu_cache_seconds) == (2.5, "EUR", 0)
    assert custom.webhook_allowed_ips == ["185.71.76.0/27", "77.75.156.11"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PAYMENT_PROVIDER_TIMEOUT", "abc"),
        ("PAYMENT_PROVIDER_TIMEOUT", "0"),
        ("PAYMENT_PROVIDER_TIMEOUT", "nan"),
        ("MENU_CACHE_SECONDS", "-1"),
        ("PAYMENT_PROVIDER_URL", "ftp://provider"),
        ("PAYMENT_PROVIDER_URL", "provider:8090"),
        ("PAYMENT_RETURN_URL", "not a url"),
        ("PAYMENT_WEBHOOK_ALLOWED_IPS", "10.0.0.0/8,nope"),
        ("PAYMENT_CURRENCY", "ROUBLES"),
    ],
)
def test_bad_payment_setting_is_refused_naming_the_variable(name: str, value: str) -> None:
    from coffee.conf import read_payment_settings
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match=name):
        read_payment_settings({name: value})
