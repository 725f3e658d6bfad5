"""Pure pieces of the payment flow, and the provider client's connection pool over real HTTP."""

from __future__ import annotations

import asyncio
import os
import sys
from decimal import Decimal
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "app"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coffee_payment.settings")
os.environ.setdefault("RUN_MODE", "development")

import django

django.setup()

from coffee import orders, payments, webhook  # noqa: E402
from coffee.models import Order  # noqa: E402
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


def test_client_reuses_one_connection_and_survives_a_provider_restart() -> None:
    """Keep-alive reuse, and a pooled connection the provider closed is retried on a new one."""

    async def scenario(fake: FakeProvider) -> list[str]:
        client = payments.ProviderClient(
            base_url=fake.url, shop_id="test-shop", secret_key="test-secret", timeout=5
        )
        async with client:
            created = []
            for i in range(3):
                body = {"amount": {"value": "1.00", "currency": "RUB"}}
                payment = await payments.create_payment(client, key=f"pool-{i}", body=body)
                created.append(payment.status)
            connector = client._session.connector  # type: ignore[union-attr]
            assert sum(len(c) for c in connector._conns.values()) == 1  # one served all three
            await asyncio.to_thread(fake.set_mode, "down")
            await asyncio.to_thread(fake.set_mode, "ok")  # same port, old connection now dead
            again = await payments.create_payment(
                client, key="pool-after-restart", body={"amount": {"value": "1", "currency": "RUB"}}
            )
            created.append(again.status)
            return created

    with FakeProvider() as fake:
        assert asyncio.run(scenario(fake)) == ["pending"] * 4
        assert fake.requests_by_key["pool-after-restart"] == 1  # not sent twice


def test_client_refused_connection_is_not_retried() -> None:
    """Nothing listening: one attempt, reported as unreachable (502), well within the timeout."""

    async def scenario(url: str) -> payments.PaymentProviderError:
        client = payments.ProviderClient(base_url=url, shop_id="s", secret_key="k", timeout=5)
        async with client:
            with pytest.raises(payments.ProviderUnavailable) as caught:
                await payments.create_payment(client, key="k", body={})
            return caught.value

    from tests.support.ports import free_port

    error = asyncio.run(scenario(f"http://127.0.0.1:{free_port()}"))
    assert error.http_status == 502
    assert error.message == "payment provider unreachable: cannot connect"


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


def test_hot_statements_come_from_the_models() -> None:
    """Table, columns and conditions are the models' own; values go through the fields."""
    from coffee import statements
    from coffee.models import Drink
    from django.db import connection

    select = statements.select(Drink, ["slug", "available"], connection)
    assert select.sql == (
        'SELECT "id", "slug", "name", "price", "available" FROM "coffee_drink" '
        'WHERE "slug" = $1 AND "available" = $2'
    )
    # SQLite hands back a float for a decimal column: the backend's converter makes it Decimal.
    drink = select.instance([7, "latte", "Latte", 270.0, True], connection, "default")
    assert (drink.pk, drink.slug, drink._state.adding) == (7, "latte", False)
    assert drink.price == Decimal("270.00") and isinstance(drink.price, Decimal)

    insert = statements.insert(Order, connection)
    assert insert is not None
    columns = [f.column for f in Order._meta.local_concrete_fields]
    assert insert.sql.startswith(f'INSERT INTO "coffee_order" ("{columns[0]}"')
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    assert insert.sql.endswith(f"VALUES ({placeholders})")
    assert len(columns) == len(insert.fields)
    new = Order(drink=Drink(pk=7), quantity=2, total=Decimal("540.00"), currency="RUB")
    params = dict(zip(columns, insert.params(new, connection), strict=True))
    assert params["drink_id"] == 7
    assert params["created_at"] is not None and new.created_at is not None  # auto_now_add set
    # A model whose key the database generates (RETURNING) stays on the ORM.
    assert statements.insert(Drink, connection) is None


def test_loop_path_leaves_models_with_save_receivers_to_the_orm() -> None:
    from coffee import pg
    from django.db.models.signals import post_save

    assert pg.insert_supported(Order)

    def receiver(**kwargs: object) -> None:
        pass

    post_save.connect(receiver, sender=Order)
    try:
        assert not pg.insert_supported(Order)
    finally:
        post_save.disconnect(receiver, sender=Order)


def _postgres_wrapper(**options: object) -> object:
    """A PostgreSQL DatabaseWrapper for these settings (never connects)."""
    from django.db.utils import ConnectionHandler

    handler = ConnectionHandler({"default": {
        "ENGINE": "django.db.backends.postgresql", "NAME": "shop", "USER": "coffee",
        "PASSWORD": "p@ss/w&rd", "HOST": "db.example", "PORT": "5433", "CONN_MAX_AGE": 60,
        "OPTIONS": options,
    }})
    return handler.create_connection("default")


def _dsn_query(kwargs: dict[str, object]) -> dict[str, str]:
    from urllib.parse import parse_qs, urlsplit

    query = parse_qs(urlsplit(str(kwargs["dsn"])).query, keep_blank_values=True)
    return {name: values[0] for name, values in query.items()}


def test_loop_connection_gets_djangos_connection_settings() -> None:
    from coffee import pg

    kwargs = pg.connect_arguments(_postgres_wrapper())
    assert _dsn_query(kwargs) == {"dbname": "shop", "user": "coffee", "password": "p@ss/w&rd",
                                  "host": "db.example", "port": "5433"}
    assert kwargs["server_settings"] == {"application_name": "coffee-orders", "TimeZone": "UTC"}
    assert kwargs["statement_cache_size"] == 0  # Django's default: no named prepared statements
    assert "timeout" not in kwargs


def test_loop_connection_passes_on_tls_startup_options_and_prepare_threshold() -> None:
    from coffee import pg
    from django.db.backends.postgresql.psycopg_any import IsolationLevel

    kwargs = pg.connect_arguments(_postgres_wrapper(
        sslmode="verify-full", sslrootcert="/etc/ssl/ca.pem", application_name="shop-api",
        options="-c search_path=coffee", connect_timeout=5, prepare_threshold=0,
        isolation_level=IsolationLevel.SERIALIZABLE, assume_role="coffee_app",
    ))
    query = _dsn_query(kwargs)
    assert (query["sslmode"], query["sslrootcert"]) == ("verify-full", "/etc/ssl/ca.pem")
    assert kwargs["server_settings"] == {
        "application_name": "shop-api", "options": "-c search_path=coffee", "TimeZone": "UTC",
        "default_transaction_isolation": "serializable",
    }
    assert kwargs["timeout"] == 5.0 and kwargs["statement_cache_size"] == 100
    assert "assume_role" not in query  # applied after connecting (SET ROLE)


def test_loop_connection_refuses_an_option_it_cannot_pass_on() -> None:
    from coffee import pg

    with pytest.raises(pg.Unsupported, match="keepalives_idle"):
        pg.connect_arguments(_postgres_wrapper(keepalives_idle=30))


def test_loop_statement_errors_surface_as_djangos() -> None:
    import asyncpg
    from coffee import pg
    from django import db

    cases = [
        (asyncpg.exceptions.UniqueViolationError("duplicate key"), db.IntegrityError),
        (asyncpg.exceptions.ForeignKeyViolationError("no such drink"), db.IntegrityError),
        (asyncpg.exceptions.NumericValueOutOfRangeError("overflow"), db.DataError),
        (asyncpg.exceptions.UndefinedTableError("no table"), db.ProgrammingError),
        (asyncpg.exceptions.AdminShutdownError("restarting"), db.OperationalError),
        (asyncpg.exceptions.ConnectionDoesNotExistError("closed"), db.OperationalError),
        (ConnectionResetError("reset"), db.OperationalError),
    ]
    for raised, expected in cases:
        with pytest.raises(expected) as caught, pg.database_errors():
            raise raised
        assert caught.value.__cause__ is raised
