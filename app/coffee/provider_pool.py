"""A small HTTP/1.1 connection pool for the provider client (an httpx transport).

Why not httpx's default pool: profiling the payment path at 32+ concurrent calls per worker
showed httpcore 1.0.9's `AsyncConnectionPool` spending most of the client's CPU on its own
bookkeeping: every enqueue and release runs `_assign_requests_to_connections`, which walks all
connections (probing each idle socket via `has_expired()`), and hands one newly idle connection
to every queued request, so the losers retry and trigger more passes (O(N^2) churn; upstream:
encode/httpcore#1035, #1110, pydantic/httpx2#1075). The per-request CPU grew ~3x from 8 to 32
concurrent calls. The provider is one origin over HTTP/1.1, which needs far less:

* idle connections in a LIFO list (the most recently used one is the likeliest to be alive),
  checked with `has_expired()` only when taken; at most `max_connections` in use at once;
* a reused keep-alive connection the server had already closed is retried once on a fresh
  connection. Safe even for POST: payments carry an Idempotence-Key.

Connections, HTTP/1.1 parsing, TLS and per-phase timeouts are httpcore's; requests, responses
and error mapping are httpx's (`httpx.AsyncHTTPTransport` with this pool in place of its own).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator

import httpcore
import httpx

# A reused connection that fails like this was closed by the server while idle.
_STALE = (
    httpcore.ConnectionNotAvailable,
    httpcore.RemoteProtocolError,
    httpcore.ReadError,
    httpcore.WriteError,
)


class LifoPool:
    """One-origin-friendly HTTP/1.1 pool (see module docstring). Bound to one event loop."""

    def __init__(
        self, *, max_connections: int, keepalive_expiry: float, ssl_context: ssl.SSLContext
    ) -> None:
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: list[httpcore.AsyncHTTPConnection] = []
        self._keepalive_expiry = keepalive_expiry
        self._ssl_context = ssl_context

    async def _take(self, origin: httpcore.Origin) -> httpcore.AsyncHTTPConnection | None:
        while self._idle:
            conn = self._idle.pop()
            if conn.can_handle_request(origin) and conn.is_idle() and not conn.has_expired():
                return conn
            await conn.aclose()
        return None

    def _new(self, origin: httpcore.Origin) -> httpcore.AsyncHTTPConnection:
        return httpcore.AsyncHTTPConnection(
            origin=origin, ssl_context=self._ssl_context, keepalive_expiry=self._keepalive_expiry
        )

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        await self._slots.acquire()
        try:
            response, conn = await self._send(request)
        except BaseException:
            self._slots.release()
            raise
        return httpcore.Response(
            status=response.status,
            headers=response.headers,
            content=_Releasing(response.stream, self, conn),
            extensions=response.extensions,
        )

    async def _send(
        self, request: httpcore.Request
    ) -> tuple[httpcore.Response, httpcore.AsyncHTTPConnection]:
        origin = request.url.origin
        conn = await self._take(origin)
        reused = conn is not None
        for attempt in (1, 2):
            conn = conn or self._new(origin)
            try:
                return await conn.handle_async_request(request), conn
            except _STALE:
                await conn.aclose()
                if not reused or attempt == 2:
                    raise
                conn = None  # the server closed it while idle: once more on a new one
            except BaseException:
                await conn.aclose()
                raise
        raise AssertionError("unreachable")

    async def release(self, conn: httpcore.AsyncHTTPConnection) -> None:
        self._slots.release()
        if conn.is_idle():
            self._idle.append(conn)
        else:
            await conn.aclose()

    async def __aenter__(self) -> LifoPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.aclose()


class _Releasing:
    """The response body; closing it hands the connection back to the pool."""

    def __init__(self, stream: object, pool: LifoPool, conn: httpcore.AsyncHTTPConnection) -> None:
        self._stream = stream
        self._pool = pool
        self._conn = conn
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._stream:  # type: ignore[attr-defined]
            yield part

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if hasattr(self._stream, "aclose"):
                await self._stream.aclose()
        finally:
            await self._pool.release(self._conn)


class LifoTransport(httpx.AsyncHTTPTransport):
    """httpx's transport (request/response conversion, error mapping) over a LifoPool."""

    def __init__(
        self, *, max_connections: int, keepalive_expiry: float, ssl_context: ssl.SSLContext
    ) -> None:
        super().__init__(verify=ssl_context)
        self._pool = LifoPool(  # type: ignore[assignment]
            max_connections=max_connections,
            keepalive_expiry=keepalive_expiry,
            ssl_context=ssl_context,
        )
