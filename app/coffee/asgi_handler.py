"""Django's ASGIHandler without the per-request thread churn (measured: see bench/README.md).

Profiling GET /api/menu under Uvicorn showed most of each request spent outside our code, in
`sync_to_async` hops that stock Django 5.2 makes for every request even when the view is async:
`request_started.asend()` and `response.close()` each run Django's sync receivers
(`close_old_connections`, `reset_queries`) via `sync_to_async`, and asgiref's per-request
`ThreadSensitiveContext` starts a fresh thread for the first such hop and another one to join
it at the end. This handler keeps Django's request flow (same `handle()` steps, same
disconnect handling, same signals) and changes only where that sync work runs:

* Each request still gets its own thread for thread-sensitive sync code (async ORM, sync
  middleware), as in Django, but from a pool of idle single-thread executors instead of a
  new thread per request.
* `request_started` and the final `response.close()` (which sends `request_finished`) run
  inline when the request has run no sync code in its thread. Django's receivers act only
  on the calling thread's database connections; the event-loop thread has none (Django
  refuses sync DB access there) and an unused request thread has none either (with
  CONN_MAX_AGE=0 they are closed at the end of every request that opened one), so inline
  they do exactly what they would do in the thread: nothing. (So `request_started` is not
  sent at all while its only receivers are those two; any other receiver still gets it.)
  A request that did use its thread (e.g. an ORM query) gets `response.close()` in that
  thread, as in Django, so its connections are closed.
* The stock security, common, CSRF and clickjacking middleware named in settings.MIDDLEWARE
  are loaded as their `coffee.middleware.Inline*` subclasses, which run the same hooks in
  the event loop instead of through one `sync_to_async` hop per hook.

Written against Django 5.2's handler (the project pins Django>=5.2,<5.3); on another version
`get_application()` falls back to Django's own handler and logs a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import django
import django.db
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.asgi import get_asgi_application
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.db import connections
from django.test.utils import override_settings
from django.urls import set_script_prefix

logger = logging.getLogger(__name__)

# Idle request threads kept for reuse per worker process. Each may keep a database connection
# open when CONN_MAX_AGE > 0, so this also bounds a worker's persistent connections (workers x
# this must stay below the server's max_connections). A thread returned beyond it closes its
# connections and stops (bursts above it cost a connect per request, as stock Django does).
MAX_IDLE_THREADS = 8


# Django's own request_started receivers: they look only at the calling thread's
# database connections (thread-critical), and the event-loop thread never has one (Django
# refuses sync DB access there), so for a request that ran no sync code they are no-ops.
_DJANGO_DB_RECEIVERS = frozenset({django.db.close_old_connections, django.db.reset_queries})


def only_djangos_db_receivers(signal: Any, sender: Any) -> bool:
    """True when the signal's live receivers are just Django's (no-op) DB ones: sending it
    inline would only walk the connections for nothing (py-spy: ~5% of a /health request).
    (request_finished also has cache/urlconf receivers, so it is always sent.)"""
    sync_receivers, async_receivers = signal._live_receivers(sender)
    return not async_receivers and all(r in _DJANGO_DB_RECEIVERS for r in sync_receivers)


class RequestThread(ThreadPoolExecutor):
    """A single-thread executor that records whether the current request used it."""

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="django-request")
        self.used = False  # during the current request
        self.ever_used = False  # so it may hold database connections

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future:  # type: ignore[override]
        self.used = self.ever_used = True
        return super().submit(fn, *args, **kwargs)


class PooledThreadASGIHandler(ASGIHandler):
    """ASGIHandler with pooled request threads and no thread hops for requests that need none."""

    def __init__(self) -> None:
        super().__init__()
        self._idle: list[RequestThread] = []

    def load_middleware(self, is_async: bool = False) -> None:
        """Build the chain with the stock middleware's hop-free equivalents (coffee.middleware)."""
        from coffee.middleware import INLINE_EQUIVALENT  # imports models: needs django.setup()

        inline = [INLINE_EQUIVALENT.get(path, path) for path in settings.MIDDLEWARE]
        with override_settings(MIDDLEWARE=inline):
            super().load_middleware(is_async)

    def _acquire(self) -> RequestThread:
        thread = self._idle.pop() if self._idle else RequestThread()
        thread.used = False
        return thread

    def _release(self, thread: RequestThread) -> None:
        if len(self._idle) < MAX_IDLE_THREADS:
            self._idle.append(thread)
            return
        if thread.ever_used:
            thread.submit(connections.close_all)  # runs in that thread: closes its connections
        thread.shutdown(wait=False)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        thread = self._acquire()
        try:
            async with ThreadSensitiveContext(executor=thread):
                await self._handle(scope, receive, send, thread)
        finally:
            self._release(thread)

    async def _handle(
        self, scope: dict[str, Any], receive: Any, send: Any, thread: RequestThread
    ) -> None:
        """Django 5.2's ASGIHandler.handle, with the two signal hops made conditional."""
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        if signals.request_started._live_receivers(self.__class__)[1]:
            # Some async receiver is connected: only asend() can run it.
            await signals.request_started.asend(sender=self.__class__, scope=scope)
        elif not only_djangos_db_receivers(signals.request_started, self.__class__):
            signals.request_started.send(sender=self.__class__, scope=scope)  # see module docstring
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            body_file.close()
            await self.send_response(error_response, send)
            await sync_to_async(error_response.close)()
            return

        async def process_request(request: Any, send: Any) -> Any:
            response = await self.run_get_response(request)
            with contextlib.suppress(asyncio.CancelledError):  # client disconnected
                await self.send_response(response, send)
            return response

        tasks = [
            asyncio.create_task(self.listen_for_disconnect(receive)),
            asyncio.create_task(process_request(request, send)),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                try:
                    task.result()
                except RequestAborted:
                    pass
                except AssertionError:
                    body_file.close()
                    raise
            else:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        try:
            response = tasks[1].result()
        except asyncio.CancelledError:
            await signals.request_finished.asend(sender=self.__class__)
        else:
            if thread.used:
                await sync_to_async(response.close)()  # closes this request's DB connections
            else:
                response.close()
        body_file.close()


def get_application() -> ASGIHandler:
    """The pooled handler on Django 5.2, Django's own handler on any other version."""
    if django.VERSION[:2] != (5, 2):
        logger.warning(
            "coffee.asgi_handler targets Django 5.2, running %s: using Django's ASGIHandler",
            django.get_version(),
        )
        return get_asgi_application()
    django.setup(set_prefix=False)
    return PooledThreadASGIHandler()
