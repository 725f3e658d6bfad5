"""The coffee API over real HTTP against real Gunicorn+Uvicorn, on SQLite (see test_api_postgres).

One server and one fake provider for the whole module; each test leaves the provider healthy.
"""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from tests.support.coffee_api import coffee_api, order, order_burst, set_sqlite_price
from tests.support.fake_provider import FakeProvider
from tests.support.servers import APP_DIR, VENV_BIN, RunningServer

MENU = {
    "americano": "180.00", "cappuccino": "250.00", "espresso": "150.00",
    "flat-white": "290.00", "hot-chocolate": "220.00", "latte": "270.00",
}


@pytest.fixture(scope="module")
def server(fake: FakeProvider) -> Iterator[RunningServer]:
    # These tests are about the API, not provider time-outs (tests/app/test_payments.py):
    # a generous bound keeps a 100-order burst on a busy 2-core machine from turning into 504s.
    with coffee_api(
        fake, static=True, MENU_CACHE_SECONDS="0.5", PAYMENT_PROVIDER_TIMEOUT="15"
    ) as running:
        yield running


def test_menu_lists_the_migrated_drinks_with_prices(client: httpx.Client) -> None:
    response = client.get("/api/menu")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["currency"] == "RUB"
    assert {d["slug"]: d["price"] for d in body["drinks"]} == MENU
    assert all(d["name"] for d in body["drinks"])


def test_menu_keeps_django_security_headers(client: httpx.Client) -> None:
    """The hop-free middleware still runs Django's security and clickjacking hooks."""
    headers = client.get("/api/menu").headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "same-origin"
    assert "set-cookie" not in headers  # no session machinery on the API


def test_wrong_method_is_405_json_with_allow(client: httpx.Client) -> None:
    response = client.post("/api/menu")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert "POST" in response.json()["error"]
    assert client.get("/api/orders").status_code == 405


def test_unknown_api_path_is_404_json(client: httpx.Client) -> None:
    response = client.get("/api/nothing/here")
    assert response.status_code == 404
    assert response.json() == {"error": "no API endpoint /api/nothing/here"}


def test_order_is_created_with_its_payment(client: httpx.Client, fake: FakeProvider) -> None:
    response = order(client, "cappuccino", 3)
    assert response.status_code == 201, response.text
    body = response.json()
    assert uuid.UUID(body["id"])
    assert body | {"id": None, "confirmation_url": None} == {
        "id": None, "drink": "cappuccino", "quantity": 3, "total": "750.00", "currency": "RUB",
        "status": "awaiting_payment", "confirmation_url": None, "payment_error": None,
    }
    assert response.headers["location"] == f"/api/orders/{body['id']}"
    assert body["confirmation_url"].startswith(f"{fake.url}/checkout/")
    payment = fake.payments[body["confirmation_url"].rsplit("/", 1)[1]]
    assert payment["amount"] == {"value": "750.00", "currency": "RUB"}
    assert payment["metadata"] == {"order_id": body["id"]}
    assert fake.requests_by_key[f"order-{body['id']}"] == 1


def test_order_quantity_defaults_to_one(client: httpx.Client) -> None:
    response = client.post("/api/orders", json={"drink": "espresso"})
    assert response.status_code == 201
    assert (response.json()["quantity"], response.json()["total"]) == (1, "150.00")


def test_get_order_returns_what_was_created(client: httpx.Client) -> None:
    created = order(client, "latte", 2).json()
    response = client.get(f"/api/orders/{created['id']}")
    assert response.status_code == 200
    assert response.json() == created


@pytest.mark.parametrize("order_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_unknown_order_is_404_json(client: httpx.Client, order_id: str) -> None:
    response = client.get(f"/api/orders/{order_id}")
    assert response.status_code == 404
    assert response.json() == {"error": f"no order {order_id!r}"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "body"),
        (b"[1, 2]", "body"),
        (b"{}", "drink"),
        (b'{"drink": ""}', "drink"),
        (b'{"drink": 7}', "drink"),
        (b'{"drink": "latte", "quantity": 0}', "quantity"),
        (b'{"drink": "latte", "quantity": 21}', "quantity"),
        (b'{"drink": "latte", "quantity": "2"}', "quantity"),
        (b'{"drink": "latte", "quantity": true}', "quantity"),
        (b'{"drink": "latte", "quantity": 1.5}', "quantity"),
        (b'{"drink": "latte", "size": "XL"}', "size"),
    ],
)
def test_bad_order_body_is_400_naming_the_field(
    client: httpx.Client, fake: FakeProvider, body: bytes, field: str
) -> None:
    before = len(fake.payments)
    headers = {"content-type": "application/json"}
    response = client.post("/api/orders", content=body, headers=headers)
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert field in response.json()["error"] or field == "body"
    assert len(fake.payments) == before


def test_unknown_drink_is_404_naming_the_field(client: httpx.Client) -> None:
    response = order(client, "mocha-frappuccino")
    assert response.status_code == 404
    error = {"error": "no drink 'mocha-frappuccino' on the menu", "field": "drink"}
    assert response.json() == error


def test_price_change_reaches_orders_at_once_and_the_menu_within_its_cache_time(
    client: httpx.Client, server: RunningServer
) -> None:
    set_sqlite_price(server.env["DATABASE_URL"], "americano", Decimal("199.00"))
    try:
        assert order(client, "americano", 2).json()["total"] == "398.00"
        time.sleep(0.6)  # MENU_CACHE_SECONDS=0.5 on this server
        menu = {d["slug"]: d["price"] for d in client.get("/api/menu").json()["drinks"]}
        assert menu["americano"] == "199.00"
    finally:
        set_sqlite_price(server.env["DATABASE_URL"], "americano", Decimal("180.00"))


def _csrf_token(html: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match, "admin login form has no CSRF token"
    return match.group(1)


def test_admin_keeps_csrf_protection(client: httpx.Client) -> None:
    response = client.post("/admin/login/", data={"username": "x", "password": "y"})
    assert response.status_code == 403
    assert "CSRF" in response.text


def test_admin_login_and_menu_page_work(server: RunningServer) -> None:
    """Sessions, auth and messages still work where they are needed: under /admin/.

    Production cookies are Secure, so the browser here speaks "HTTPS" the way the ingress
    does (X-Forwarded-Proto) and carries its cookies itself (httpx keeps Secure cookies
    off plain-HTTP URLs).
    """
    env = server.env | {
        "DJANGO_SUPERUSER_USERNAME": "barista", "DJANGO_SUPERUSER_PASSWORD": "s3cret-pass-word",
        "DJANGO_SUPERUSER_EMAIL": "barista@example.com",
    }
    subprocess.run(
        [str(VENV_BIN / "python"), "manage.py", "createsuperuser", "--noinput"],
        cwd=APP_DIR, env=env, check=True, capture_output=True,
    )
    origin = f"https://127.0.0.1:{server.port}"
    cookies: dict[str, str] = {}

    def browse(method: str, path: str, **kwargs: object) -> httpx.Response:
        headers = {"x-forwarded-proto": "https", "origin": origin, "referer": origin + path,
                   "cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}
        response = httpx.request(method, server.url(path), headers=headers, timeout=10, **kwargs)
        cookies.update(response.cookies.items())
        return response

    login = browse("GET", "/admin/login/")
    assert login.status_code == 200
    assert "csrftoken" in cookies
    response = browse(
        "POST", "/admin/login/?next=/admin/",
        data={"username": "barista", "password": "s3cret-pass-word",
              "csrfmiddlewaretoken": _csrf_token(login.text), "next": "/admin/"},
    )
    assert response.status_code == 302, response.text[:2000]
    assert "sessionid" in cookies
    drinks = browse("GET", "/admin/coffee/drink/")
    assert drinks.status_code == 200
    assert "Flat White" in drinks.text
    assert browse("GET", "/admin/coffee/order/").status_code == 200


def test_concurrent_orders_all_succeed(server: RunningServer) -> None:
    """A burst of orders across the workers: SQLite writes must not fail under concurrency."""

    responses = order_burst(server.base_url, [{"drink": "latte"}] * 100)
    assert [r.status_code for r in responses] == [201] * 100, {r.text for r in responses}
    assert len({r.json()["id"] for r in responses}) == 100
