"""The order path's hot statements on PostgreSQL, on the event loop (psycopg's async driver).

Why: with the ORM every statement of a request is a hop to a database thread and back, and the
thread and the event loop then contend for the GIL while psycopg sends and waits; profiling
POST /api/orders showed that as the largest part of an order's CPU (bench/README.md). Here a
statement runs in the worker's event loop on one connection kept per event loop
(`LoopConnection`), with no thread at all. The SQL comes from the models (coffee.statements);
everything else (migrations, admin, the other endpoints) stays on the ORM.

Connections are configured as Django configures its own: the same connection parameters
(`DatabaseWrapper.get_connection_params()`: NAME, USER, HOST, OPTIONS, the adapters, the
prepare threshold), autocommit (each statement commits, as Django's default), the time zone and
`assume_role`. Lifetime follows CONN_MAX_AGE; CONN_MAX_AGE=0 (no persistent connections) turns
this path off, as does any database other than PostgreSQL on psycopg 3 (SQLite in tests/dev).

Only for a long-lived event loop (Uvicorn's): the caller says so (`shared`), as for the
payment client; under WSGI each request runs on a fresh loop and uses the ORM instead.
"""

from __future__ import annotations

import asyncio
import functools
import time
import weakref
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model
from django.db.models.signals import post_save, pre_save

from coffee import statements

M = TypeVar("M", bound=Model)

# Connections per worker process. A statement holds one for well under a millisecond, so a
# few serve hundreds of orders per second; workers x this stays far below max_connections.
APPLICATION_NAME = "coffee-orders"


@functools.cache
def _django() -> Any:
    """A DatabaseWrapper for its settings, ops and features only; it never connects."""
    return connections.create_connection(DEFAULT_DB_ALIAS)


@functools.cache
def enabled() -> bool:
    """PostgreSQL on psycopg 3, with persistent connections (CONN_MAX_AGE != 0)."""
    wrapper = _django()
    if wrapper.vendor != "postgresql" or wrapper.settings_dict["CONN_MAX_AGE"] == 0:
        return False
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    return bool(is_psycopg3)


def connection_kwargs() -> dict[str, Any]:
    """Django's own psycopg connect() arguments, for an async autocommit connection."""
    params = dict(_django().get_connection_params())
    params.pop("cursor_factory", None)  # Django's sync cursor class; async connections use theirs
    params["autocommit"] = True
    # Tells this path's connections apart in pg_stat_activity (unless OPTIONS names one).
    params.setdefault("application_name", APPLICATION_NAME)
    return params


async def _configure(conn: Any) -> None:
    """What Django does for a new connection: its time zone, then the role to assume."""
    wrapper = _django()
    name = wrapper.timezone_name
    if name and conn.info.parameter_status("TimeZone") != name:
        await conn.execute(wrapper.ops.set_time_zone_sql(), [name])
    if role := wrapper.settings_dict["OPTIONS"].get("assume_role"):
        from psycopg import sql

        await conn.execute(sql.SQL("SET ROLE {}").format(sql.Literal(role)))


class LoopConnection:
    """One autocommit AsyncConnection per event loop, shared by the loop's requests.

    psycopg serializes statements on a connection with its own lock, so concurrent requests
    queue for it; a statement holds it for well under a millisecond (one round trip, no
    transaction), far less than an order waits for the payment provider. Why not
    psycopg_pool: its getconn/putconn bookkeeping cost ~30% of a statement's CPU here, and a
    single connection per worker is also what Django keeps per thread. A connection that broke
    or outlived CONN_MAX_AGE is replaced on the next use.
    """

    def __init__(self) -> None:
        self._conn: Any = None
        self._born = 0.0
        self._connecting: asyncio.Future[Any] | None = None
        # Idle cursors of the current connection: a new cursor per statement (what
        # conn.execute() does) copies the adapters map each time, ~25% of a statement's CPU.
        self._cursors: list[Any] = []

    def take_cursor(self, conn: Any) -> Any:
        return self._cursors.pop() if self._cursors else conn.cursor()

    def give_back(self, cursor: Any) -> None:
        if cursor.connection is self._conn and not cursor.closed:
            self._cursors.append(cursor)

    async def get(self) -> Any:
        conn = self._conn
        if conn is not None and not conn.closed and not self._expired():
            return conn
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
        try:
            return await asyncio.shield(self._connecting)
        finally:
            if self._connecting is not None and self._connecting.done():
                self._connecting = None

    def _expired(self) -> bool:
        max_age = _django().settings_dict["CONN_MAX_AGE"]
        return max_age is not None and time.monotonic() - self._born > max_age

    async def _connect(self) -> Any:
        import psycopg

        old, self._conn = self._conn, None
        self._cursors = []
        if old is not None and not old.closed:
            # Expired, not broken: statements other requests already queued on it must still
            # run, so it is closed only once they are done (they hold or wait for its lock).
            closing = asyncio.ensure_future(_close_when_idle(old))
            _closing.add(closing)
            closing.add_done_callback(_closing.discard)
        conn = await psycopg.AsyncConnection.connect(**connection_kwargs())
        await _configure(conn)
        self._conn, self._born = conn, time.monotonic()
        return conn


async def _close_when_idle(conn: Any) -> None:
    async with conn.lock:  # after every statement queued before this (asyncio.Lock is FIFO)
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


@functools.cache
def _select(model: type[Model], where: tuple[str, ...]) -> statements.Select:
    return statements.select(model, where, _django())


@functools.cache
def _insert(model: type[Model]) -> statements.Insert | None:
    return statements.insert(model, _django())


@functools.cache
def _operational_error() -> type[Exception]:
    import psycopg

    return psycopg.OperationalError


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
    with wrapper.wrap_database_errors:  # psycopg errors raised as django.db's, as the ORM does
        holder = _holder()
        for attempt in (1, 2):
            conn = await holder.get()
            cursor = holder.take_cursor(conn)
            try:
                await cursor.execute(stmt.sql, params)
            except _operational_error():
                if attempt == 2 or not conn.closed:
                    raise
                continue
            row = await cursor.fetchone()
            holder.give_back(cursor)
            break
    if row is None:
        return None
    return stmt.instance(row, wrapper, DEFAULT_DB_ALIAS)  # type: ignore[return-value]


async def insert(obj: Model) -> None:
    """Store a new instance (primary key already set), as `obj.save(force_insert=True)` does.

    Not retried: after a broken connection nobody knows whether the INSERT committed.
    """
    stmt = _insert(type(obj))
    if stmt is None or obj.pk is None:
        raise ValueError(f"{type(obj).__name__}: not insertable on the async path")
    obj._prepare_related_fields_for_save(operation_name="save")
    wrapper = _django()
    params = stmt.params(obj, wrapper)
    with wrapper.wrap_database_errors:
        holder = _holder()
        cursor = holder.take_cursor(await holder.get())
        await cursor.execute(stmt.sql, params)
        holder.give_back(cursor)
    obj._state.adding = False
    obj._state.db = DEFAULT_DB_ALIAS
