"""The order path's hot statements on PostgreSQL, on the event loop (asyncpg).

Why: with the ORM every statement of a request is a hop to a database thread and back, and the
thread and the event loop then contend for the GIL while the driver sends and waits; profiling
POST /api/orders showed that as the largest part of an order's CPU (bench/README.md). Here a
statement runs in the worker's event loop on one connection kept per event loop
(`LoopConnection`), with no thread at all. The SQL comes from the models (coffee.statements);
everything else (migrations, admin, the other endpoints) stays on the ORM and its psycopg.

Why asyncpg and not psycopg's async driver for these two statements: asyncpg is an asyncio
protocol (no add_reader/remove_reader and future per wait) with binary codecs in C; measured on
the same code path it cut the order's server CPU by ~9% (bench/README.md).

Connections are configured from Django's own settings for the database: the same libpq
connection parameters (`DatabaseWrapper.get_connection_params()`: NAME, USER, PASSWORD, HOST,
PORT and OPTIONS such as sslmode/sslrootcert, application_name, options), autocommit (each
statement commits, as Django's default), the time zone, `isolation_level` and `assume_role`.
Prepared statements follow Django's `prepare_threshold` option: unset (Django's default, safe
behind PgBouncer in transaction mode) means unnamed statements only; set means asyncpg's
statement cache. Lifetime follows CONN_MAX_AGE. The path is off, and the ORM does the work,
for CONN_MAX_AGE=0 (no persistent connections), for any database other than PostgreSQL
(SQLite in tests and development) and for a connection option this module cannot pass on
exactly (logged once, naming it).

Only for a long-lived event loop (Uvicorn's): the caller says so (`shared`), as for the
payment client; under WSGI each request runs on a fresh loop and uses the ORM instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import urllib.parse
import weakref
from collections.abc import Iterator
from typing import Any, TypeVar

import asyncpg
from django import db as django_db
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model
from django.db.models.signals import post_save, pre_save

from coffee import statements

M = TypeVar("M", bound=Model)
logger = logging.getLogger(__name__)

# Tells this path's connections apart in pg_stat_activity (unless OPTIONS names one).
APPLICATION_NAME = "coffee-orders"
# libpq parameters asyncpg reads from a connection URI itself.
DSN_PARAMETERS = frozenset({
    "dbname", "host", "port", "user", "password", "passfile", "service", "sslmode", "sslcert",
    "sslkey", "sslrootcert", "sslcrl", "sslpassword", "sslnegotiation",
    "ssl_min_protocol_version", "ssl_max_protocol_version", "target_session_attrs",
    "krbsrvname", "gsslib",
})
# Sent in the startup packet as libpq sends them.
STARTUP_PARAMETERS = frozenset({"application_name", "options"})
# psycopg objects Django adds for its own connections (adapters, cursor class): not needed.
PSYCOPG_ONLY = frozenset({"context", "cursor_factory"})


@functools.cache
def _django() -> Any:
    """A DatabaseWrapper for its settings, ops and features only; it never connects."""
    return connections.create_connection(DEFAULT_DB_ALIAS)


class Unsupported(ValueError):
    """A connection setting this path cannot reproduce exactly: the ORM is used instead."""


def connect_arguments(wrapper: Any = None) -> dict[str, Any]:
    """asyncpg.connect() keyword arguments equivalent to Django's own connection (`wrapper`,
    default: the default database's); Unsupported names a setting that has no equivalent."""
    wrapper = wrapper or _django()
    params = dict(wrapper.get_connection_params())
    options = wrapper.settings_dict["OPTIONS"]
    for name in PSYCOPG_ONLY:
        params.pop(name, None)
    params.pop("client_encoding", None)  # Django always sets UTF8, asyncpg's only encoding
    prepare_threshold = params.pop("prepare_threshold", None)
    timeout = params.pop("connect_timeout", None)
    server_settings = {name: str(params.pop(name)) for name in STARTUP_PARAMETERS & params.keys()}
    server_settings.setdefault("application_name", APPLICATION_NAME)
    if unknown := sorted(params.keys() - DSN_PARAMETERS):
        raise Unsupported(f"OPTIONS {unknown}")
    if wrapper.timezone_name:
        server_settings["TimeZone"] = wrapper.timezone_name
    if (level := options.get("isolation_level")) is not None:
        from django.db.backends.postgresql.psycopg_any import IsolationLevel

        name = IsolationLevel(level).name.lower().replace("_", " ")
        server_settings["default_transaction_isolation"] = name
    query = urllib.parse.urlencode({k: str(v) for k, v in params.items() if v is not None})
    kwargs: dict[str, Any] = {
        "dsn": f"postgresql://?{query}",
        "server_settings": server_settings,
        # Django's default (no prepare_threshold) never prepares named statements, which
        # keeps PgBouncer in transaction mode working: asyncpg then uses unnamed ones only.
        "statement_cache_size": 0 if prepare_threshold is None else 100,
    }
    if timeout is not None:
        kwargs["timeout"] = float(timeout)
    return kwargs


@functools.cache
def enabled() -> bool:
    """PostgreSQL with persistent connections (CONN_MAX_AGE != 0), and settings this path can
    reproduce exactly; else the ORM serves the order path too."""
    wrapper = _django()
    if wrapper.vendor != "postgresql" or wrapper.settings_dict["CONN_MAX_AGE"] == 0:
        return False
    try:
        connect_arguments()
    except Unsupported as exc:
        logger.warning("order statements use the ORM: %s not supported on the event loop", exc)
        return False
    return True


async def _connect() -> Any:
    conn = await asyncpg.connect(**connect_arguments())
    if role := _django().settings_dict["OPTIONS"].get("assume_role"):
        await conn.execute("SELECT set_config('role', $1, false)", role)  # = SET ROLE
    return conn


@contextlib.contextmanager
def database_errors() -> Iterator[None]:
    """asyncpg's errors as django.db's (what the ORM raises), by SQLSTATE class."""
    try:
        yield
    except asyncpg.PostgresError as exc:
        state = exc.sqlstate or ""
        kind = {
            "23": django_db.IntegrityError,
            "22": django_db.DataError,
            "42": django_db.ProgrammingError,
            "08": django_db.OperationalError,
            "57": django_db.OperationalError,
            "53": django_db.OperationalError,
        }.get(state[:2], django_db.DatabaseError)
        raise kind(str(exc)) from exc
    except (asyncpg.InterfaceError, OSError) as exc:
        raise django_db.OperationalError(str(exc) or type(exc).__name__) from exc


class LoopConnection:
    """One autocommit asyncpg connection per event loop, shared by the loop's requests.

    A connection runs one statement at a time, so statements queue on a FIFO lock; a statement
    holds it for one round trip (no transaction), far less than an order waits for the payment
    provider. Why not a pool: a single connection per worker is also what Django keeps per
    thread, and pool bookkeeping would cost more than the statement. A connection that broke
    or outlived CONN_MAX_AGE is replaced on the next use.
    """

    def __init__(self) -> None:
        self.conn: Any = None
        self.lock = asyncio.Lock()
        self._born = 0.0
        self._connecting: asyncio.Future[Any] | None = None

    async def get(self) -> tuple[Any, asyncio.Lock]:
        conn = self.conn
        if conn is not None and not conn.is_closed() and not self._expired():
            return conn, self.lock
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._replace())
        try:
            return await asyncio.shield(self._connecting)
        finally:
            if self._connecting is not None and self._connecting.done():
                self._connecting = None

    def _expired(self) -> bool:
        max_age = _django().settings_dict["CONN_MAX_AGE"]
        return max_age is not None and time.monotonic() - self._born > max_age

    async def _replace(self) -> tuple[Any, asyncio.Lock]:
        old, old_lock = self.conn, self.lock
        self.conn = None
        if old is not None and not old.is_closed():
            # Expired, not broken: statements other requests already queued on it must still
            # run, so it is closed only once they are done (they hold or wait for its lock).
            closing = asyncio.ensure_future(_close_when_idle(old, old_lock))
            _closing.add(closing)
            closing.add_done_callback(_closing.discard)
        conn = await _connect()
        self.conn, self.lock, self._born = conn, asyncio.Lock(), time.monotonic()
        return conn, self.lock


async def _close_when_idle(conn: Any, lock: asyncio.Lock) -> None:
    async with lock:  # after every statement queued before this (asyncio.Lock is FIFO)
        await conn.close()


_closing: set[asyncio.Future[None]] = set()  # keeps those closing tasks alive until done

_connections: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopConnection] = (
    weakref.WeakKeyDictionary()
)


def _holder() -> LoopConnection:
    loop = asyncio.get_running_loop()
    holder = _connections.get(loop)
    if holder is None:
        holder = _connections[loop] = LoopConnection()
    return holder


# What a statement on a connection that died while kept (server restart) raises.
_BROKEN = (asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError, OSError)


@functools.cache
def _select(model: type[Model], where: tuple[str, ...]) -> statements.Select:
    return statements.select(model, where, _django())


@functools.cache
def _insert(model: type[Model]) -> statements.Insert | None:
    return statements.insert(model, _django())


def insert_supported(model: type[Model]) -> bool:
    """False where the ORM must save: database-computed values, or save signal receivers."""
    if pre_save.has_listeners(model) or post_save.has_listeners(model):
        return False
    return _insert(model) is not None


async def get(model: type[M], **where: Any) -> M | None:
    """The one row with these field values (equality on unique fields), or None.

    A read is retried once on a new connection when the kept one turns out broken (e.g. the
    server restarted while it sat idle), so that costs no failed request.
    """
    stmt = _select(model, tuple(where))
    wrapper = _django()
    params = stmt.params(list(where.values()), wrapper)
    holder = _holder()
    with database_errors():
        for attempt in (1, 2):
            conn, lock = await holder.get()
            try:
                async with lock:
                    row = await conn.fetchrow(stmt.sql, *params)
            except _BROKEN:
                if attempt == 2 or not conn.is_closed():
                    raise
                continue
            break
    if row is None:
        return None
    return stmt.instance(tuple(row), wrapper, DEFAULT_DB_ALIAS)  # type: ignore[return-value]


async def insert(obj: Model) -> None:
    """Store a new instance (primary key already set), as `obj.save(force_insert=True)` does.

    Not retried: after a broken connection nobody knows whether the INSERT committed.
    """
    stmt = _insert(type(obj))
    if stmt is None or obj.pk is None:
        raise ValueError(f"{type(obj).__name__}: not insertable on the async path")
    obj._prepare_related_fields_for_save(operation_name="save")
    params = stmt.params(obj, _django())
    with database_errors():
        conn, lock = await _holder().get()
        async with lock:
            await conn.execute(stmt.sql, *params)
    obj._state.adding = False
    obj._state.db = DEFAULT_DB_ALIAS
