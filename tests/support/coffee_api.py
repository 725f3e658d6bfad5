"""A real Gunicorn+Uvicorn coffee API wired to a fake payment provider, for tests and benches.

    with FakeProvider() as fake, coffee_api(fake) as server:
        httpx.post(server.url("/api/orders"), json={"drink": "latte"})
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import httpx

from tests.support.fake_provider import FakeProvider
from tests.support.servers import APP_DIR, RunningServer, gunicorn_server, migrate, server_env

SHOP_ID = "test-shop"
SECRET_KEY = "test-secret"


def api_env(
    fake: FakeProvider, database_url: str | None = None, **overrides: str
) -> dict[str, str]:
    """server_env plus the payment settings pointing at `fake` (credentials match its defaults)."""
    payment = {
        "PAYMENT_PROVIDER_URL": fake.url,
        "PAYMENT_SHOP_ID": SHOP_ID,
        "PAYMENT_SECRET_KEY": SECRET_KEY,
        "PAYMENT_PROVIDER_TIMEOUT": "1",
    }
    return server_env(database_url, **(payment | overrides))


def collectstatic(env: dict[str, str]) -> None:
    """What the image build does; the admin's pages need it in production mode."""
    env["DJANGO_STATIC_ROOT"] = tempfile.mkdtemp(prefix="coffee-static-")
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=APP_DIR, env=env, check=True, capture_output=True,
    )


@contextmanager
def coffee_api(
    fake: FakeProvider, database_url: str | None = None, *, static: bool = False, **overrides: str
) -> Iterator[RunningServer]:
    """Migrate a database (new SQLite file unless given) and serve it with the real config."""
    env = api_env(fake, database_url, **overrides)
    migrate(env)
    if static:
        collectstatic(env)
    with gunicorn_server(env) as server:
        yield server


def order(client: httpx.Client, drink: str = "latte", quantity: int = 1) -> httpx.Response:
    return client.post("/api/orders", json={"drink": drink, "quantity": quantity})


def order_burst(base_url: str, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    """POST every body to /api/orders at once (one async client), in order of the bodies."""

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            return await asyncio.gather(*(http.post("/api/orders", json=b) for b in bodies))

    return asyncio.run(burst())


def notification(event: str, payment: dict[str, Any]) -> dict[str, Any]:
    """A YooKassa-style webhook body for `payment` (as the fake provider stores it)."""
    return {"type": "notification", "event": event, "object": payment}


def payment_id_of(order_body: dict[str, Any]) -> str:
    """The provider payment id, from the confirmation URL the fake provider hands out."""
    return order_body["confirmation_url"].rsplit("/", 1)[1]


def set_sqlite_price(database_url: str, slug: str, price: Decimal) -> None:
    """Change a price behind the app's back (as another worker's admin edit would)."""
    path = database_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        db.execute("UPDATE coffee_drink SET price = ? WHERE slug = ?", (str(price), slug))
