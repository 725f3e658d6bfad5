"""Client for the external payment provider, modelled on YooKassa's payments API (v3).

One `ProviderClient` (an aiohttp session) per event loop, so each Uvicorn worker process reuses
its pooled keep-alive connections across requests. Every call is bounded as a whole by
PAYMENT_PROVIDER_TIMEOUT (a provider that trickles bytes cannot hold a request longer): with
Uvicorn workers nothing else bounds a request.

Why aiohttp, not httpx: on the payment path httpx/httpcore/h11/anyio (pure Python) cost more CPU
per call than the rest of the order, and httpcore's pool grew O(N^2) with concurrent calls;
aiohttp's client parses HTTP in C and pools per host (measured, bench/README.md).
"""

import asyncio
import base64
import functools
import json
import ssl
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp
from django.conf import settings

# Connections per worker process to the provider. Keep-alive matters: a fresh TCP connection per
# payment adds a round trip; waiting for a free connection counts in the timeout.
MAX_CONNECTIONS = 256
KEEPALIVE_SECONDS = 15.0


class PaymentProviderError(Exception):
    """The provider could not be used; `http_status` is what our client gets (502 or 504)."""

    http_status = 502

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ProviderUnavailable(PaymentProviderError):
    """Connection refused/reset, or the provider answered with a 5xx / unexpected status."""


class ProviderTimeout(PaymentProviderError):
    """No complete answer within PAYMENT_PROVIDER_TIMEOUT."""

    http_status = 504


class ProviderBadResponse(PaymentProviderError):
    """The provider answered 2xx but the body is not a payment object we understand."""


@dataclass(frozen=True)
class Payment:
    """The fields of a provider payment object the shop relies on."""

    id: str
    status: str  # pending | waiting_for_capture | succeeded | canceled
    amount: Decimal
    currency: str
    confirmation_url: str
    order_id: str  # from metadata.order_id: ties the payment to our order


def payment_request(
    *, order_id: str, total: Decimal, currency: str, description: str, return_url: str
) -> dict[str, Any]:
    """Body of POST /v3/payments: one-stage payment (capture=true) with a redirect confirmation."""
    return {
        "amount": {"value": f"{total:.2f}", "currency": currency},
        "capture": True,
        "confirmation": {"type": "redirect", "return_url": return_url},
        "description": description[:128],
        "metadata": {"order_id": order_id},
    }


def parse_payment(data: object) -> Payment:
    """Validate a provider payment object; anything unexpected is a ProviderBadResponse."""
    if not isinstance(data, dict):
        raise ProviderBadResponse("payment provider returned a non-object JSON body")
    try:
        amount = data["amount"]
        confirmation = data.get("confirmation") or {}
        metadata = data.get("metadata") or {}
        payment = Payment(
            id=str(data["id"]),
            status=str(data["status"]),
            amount=Decimal(str(amount["value"])),
            currency=str(amount["currency"]),
            confirmation_url=str(confirmation.get("confirmation_url", "")),
            order_id=str(metadata.get("order_id", "")),
        )
    except (KeyError, TypeError, AttributeError, InvalidOperation) as exc:
        raise ProviderBadResponse(
            f"payment provider returned an invalid payment object ({exc!r})"
        ) from exc
    if not payment.id:
        raise ProviderBadResponse("payment provider returned a payment without id")
    return payment


def idempotence_key(order_id: str) -> str:
    """The order's own id: every attempt to pay one order carries the same key, so the provider
    answers a retry with the payment it already created instead of charging again."""
    return f"order-{order_id}"


# A call that fails like this on a kept-alive connection may have hit one the provider closed
# while idle; it is sent once more on a new connection. Safe even for POST: every payment
# request carries an Idempotence-Key, so the provider never creates a second payment.
_STALE = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)


def unreachable_reason(exc: aiohttp.ClientError) -> str:
    """A short, library-neutral reason for a failed call (shown to the API's client)."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "cannot connect"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "connection closed before an answer"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "incomplete answer"
    if isinstance(exc, aiohttp.ClientResponseError):
        return "invalid HTTP answer"
    return type(exc).__name__


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """Built once per process: loading the CA bundle costs more than a whole payment call, and
    under WSGI a client (which would otherwise build its own) is created per request."""
    return ssl.create_default_context()


class ProviderClient:
    """HTTP client for the provider's API: Basic auth, JSON, pooled keep-alive connections.

    The aiohttp session is created on first use, inside the event loop that uses it. No cookie
    jar (the API sets none), no redirects (the API answers, it never redirects a payment).
    """

    def __init__(self, *, base_url: str, shop_id: str, secret_key: str, timeout: float) -> None:
        self._base_url = base_url.rstrip("/")
        credentials = base64.b64encode(f"{shop_id}:{secret_key}".encode()).decode()
        self._headers = {
            "Authorization": f"Basic {credentials}",
            "User-Agent": "coffee-payments-server",
            "Accept": "application/json",
        }
        # No aiohttp timers: `_call` bounds each whole call (retry included) with one
        # asyncio.timeout(PAYMENT_PROVIDER_TIMEOUT); `timeout` is kept for callers.
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self.is_closed = False

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=MAX_CONNECTIONS,
                    keepalive_timeout=KEEPALIVE_SECONDS,
                    ssl=_tls_context(),
                ),
                timeout=aiohttp.ClientTimeout(),
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("Accept-Encoding",),
                auto_decompress=False,
            )
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: object = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """(status, body) of one call; raises aiohttp.ClientError. Unbounded in time by
        itself: callers wrap it in asyncio.timeout (see `_call`)."""
        session = self._open()
        all_headers = self._headers | (headers or {})
        content = None
        if json_body is not None:
            content = json.dumps(json_body, separators=(",", ":")).encode()
            all_headers["Content-Type"] = "application/json"
        url = self._base_url + path
        for attempt in (1, 2):
            try:
                async with session.request(
                    method, url, data=content, headers=all_headers, allow_redirects=False
                ) as response:
                    return response.status, await response.read()
            except _STALE as exc:
                if attempt == 2 or isinstance(exc, aiohttp.ClientConnectorError):
                    raise
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        self.is_closed = True
        if self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> "ProviderClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ProviderClient]" = (
    weakref.WeakKeyDictionary()
)


def _new_client() -> ProviderClient:
    return ProviderClient(
        base_url=settings.PAYMENT_PROVIDER_URL,
        shop_id=settings.PAYMENT_SHOP_ID,
        secret_key=settings.PAYMENT_SECRET_KEY,
        timeout=settings.PAYMENT_PROVIDER_TIMEOUT,
    )


def shared_client() -> ProviderClient:
    """The running event loop's client (a long-lived ASGI loop: its pool outlives requests)."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        client = _clients[loop] = _new_client()
    return client


@asynccontextmanager
async def provider_client(shared: bool) -> AsyncIterator[ProviderClient]:
    """The worker's shared client when `shared` (long-lived ASGI event loop), else a client closed
    after use: under WSGI Django runs each async view on a fresh, short-lived event loop, and a
    pooled connection must not outlive its loop."""
    if shared:
        yield shared_client()
        return
    async with _new_client() as client:
        yield client


async def _call(client: ProviderClient, method: str, path: str, **kwargs: Any) -> Payment:
    try:
        async with asyncio.timeout(settings.PAYMENT_PROVIDER_TIMEOUT):
            status, body = await client.request(method, path, **kwargs)
    except TimeoutError as exc:  # aiohttp's own timeouts are TimeoutError subclasses too
        raise ProviderTimeout(
            f"payment provider did not answer within {settings.PAYMENT_PROVIDER_TIMEOUT:g} s"
        ) from exc
    except aiohttp.ClientError as exc:
        raise ProviderUnavailable(
            f"payment provider unreachable: {unreachable_reason(exc)}"
        ) from exc
    if status != 200:
        raise ProviderUnavailable(f"payment provider answered HTTP {status}")
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise ProviderBadResponse("payment provider returned malformed JSON") from exc
    return parse_payment(data)


async def create_payment(client: ProviderClient, *, key: str, body: dict[str, Any]) -> Payment:
    """POST /v3/payments with the Idempotence-Key header."""
    return await _call(
        client, "POST", "/v3/payments", json_body=body, headers={"Idempotence-Key": key}
    )


async def fetch_payment(client: ProviderClient, payment_id: str) -> Payment:
    """GET /v3/payments/{id}: the provider's authoritative view of a payment."""
    return await _call(client, "GET", f"/v3/payments/{payment_id}")
