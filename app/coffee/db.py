"""Database work of the API: the order path's hot statements on the event loop (coffee.pg, on
PostgreSQL under Uvicorn), everything else on a small per-process pool of threads.

Why not Django's async ORM (`aget`, `asave`, ...): each call is its own `sync_to_async` hop into
the request's own thread, and under load a worker holds more requests than it keeps request
threads (coffee.asgi_handler.MAX_IDLE_THREADS), so the extra requests each started a thread
that opened a new PostgreSQL connection (a server backend forked per request) and closed it
again. Profiling POST /api/orders showed that churn and the hops as a large part of an order's
CPU (bench/README.md). Here the DB work of one request step runs as one plain function on one
of DB_THREADS threads per process, each keeping its connection (CONN_MAX_AGE) across requests.

Each call does what Django's request_started/request_finished receivers do for a request's
thread: `close_old_connections()` before and after, so a connection that broke (errors), grew
older than CONN_MAX_AGE (0: after every call, as stock Django) or fails its health check is
replaced, never reused.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import close_old_connections
from django.db.models import Model

from coffee import pg
from coffee.models import Drink

T = TypeVar("T")

# Threads (so at most this many PostgreSQL connections) per worker process. An order spends
# ~1 ms of its ~100 ms in the database, so a few threads serve many concurrent requests.
DB_THREADS = 4


@functools.cache
def _executor() -> ThreadPoolExecutor:
    """Created on first use, so in the worker process (after Gunicorn's fork), never before."""
    return ThreadPoolExecutor(max_workers=DB_THREADS, thread_name_prefix="coffee-db")


def _guarded(fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
    close_old_connections()
    try:
        return fn(*args, **kwargs)
    finally:
        close_old_connections()


async def run(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run `fn(*args, **kwargs)` (sync ORM code: one request step) on a database thread."""
    return await sync_to_async(_guarded, thread_sensitive=False, executor=_executor())(
        fn, args, kwargs
    )


def _drink(slug: str) -> Drink | None:
    return Drink.objects.filter(slug=slug, available=True).first()


async def drink_on_menu(slug: str, *, on_loop: bool) -> Drink | None:
    """The available drink with this slug, or None. `on_loop`: the caller runs on a long-lived
    event loop (Uvicorn), where PostgreSQL is queried from the loop itself (coffee.pg)."""
    if on_loop and pg.enabled():
        return await pg.get(Drink, slug=slug, available=True)
    return await run(_drink, slug)


async def insert(obj: Model, *, on_loop: bool) -> None:
    """`obj.save(force_insert=True)`; from the event loop where coffee.pg can (drink_on_menu)."""
    if on_loop and pg.enabled() and pg.insert_supported(type(obj)):
        # Shielded: a client that disconnects cancels the view, but an order whose payment was
        # already created must still be stored (on a DB thread the save would finish anyway).
        await asyncio.shield(pg.insert(obj))
    else:
        await run(obj.save, force_insert=True)
