"""Client for the external payment provider, modelled on YooKassa's payments API (v3).

One `ProviderClient` (httpx over coffee.provider_pool) per event loop, so each Uvicorn worker
process reuses its pooled keep-alive connections across requests. Every call is bounded as a whole
by PAYMENT_PROVIDER_TIMEOUT (httpx's own timeouts are per phase, so a provider that trickles bytes
could otherwise hold a request far longer): with Uvicorn workers nothing else bounds a request.
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

import httpx
from django.conf import settings

from coffee.provider_pool import LifoTransport

# Connections per worker process to the provider. Keep-alive matters: a fresh TCP connection per
# payment adds a round trip; waiting for a free connection counts in the timeout.
MAX_CONNECTIONS = 256
KEEPALIVE_SECONDS = 30.0


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


class ProviderClient:
    """HTTP client for the provider: httpx requests sent straight to the pooled transport.

    Why not `httpx.AsyncClient.request`: per call it also runs an auth flow, redirect handling,
    cookie-jar bookkeeping and an INFO log line, none of which the provider's API uses; on the
    payment path that was ~25% of a call's CPU (measured, bench/README.md). What remains is
    httpx's: request building (Host, Content-Length), the transport's error mapping to
    `httpx.HTTPError`, per-phase timeouts (the request's "timeout" extension, as httpx sets it).
    """

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport,
        *,
        base_url: str,
        shop_id: str,
        secret_key: str,
        timeout: float,
    ) -> None:
        self._transport = transport
        self._base_url = base_url.rstrip("/")
        credentials = base64.b64encode(f"{shop_id}:{secret_key}".encode()).decode()
        self._headers = [
            ("Authorization", f"Basic {credentials}"),
            ("User-Agent", "coffee-payments-server"),
            ("Accept", "application/json"),
        ]
        self._timeout = httpx.Timeout(timeout).as_dict()
        self.is_closed = False

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: object = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> tuple[int, bytes]:
        """(status, body) of one call; raises httpx.HTTPError subclasses like httpx does."""
        extra = list(headers or [])
        content = None
        if json_body is not None:
            content = json.dumps(json_body, separators=(",", ":")).encode()
            extra.append(("Content-Type", "application/json"))
        request = httpx.Request(
            method,
            self._base_url + path,
            content=content,
            headers=self._headers + extra,
            extensions={"timeout": self._timeout},
        )
        response = await self._transport.handle_async_request(request)
        try:
            return response.status_code, await response.aread()
        finally:
            await response.aclose()  # hands the connection back to the pool

    async def aclose(self) -> None:
        self.is_closed = True
        await self._transport.aclose()

    async def __aenter__(self) -> "ProviderClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ProviderClient]" = (
    weakref.WeakKeyDictionary()
)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """Built once per process: loading the CA bundle costs more than a whole payment call, and
    under WSGI a client (which would otherwise build its own) is created per request."""
    return httpx.create_ssl_context()


def _new_client() -> ProviderClient:
    return ProviderClient(
        # httpcore's own pool costs more CPU than the call itself under concurrency.
        LifoTransport(
            max_connections=MAX_CONNECTIONS,
            keepalive_expiry=KEEPALIVE_SECONDS,
            ssl_context=_tls_context(),
        ),
        base_url=settings.PAYMENT_PROVIDER_URL,
        shop_id=settings.PAYMENT_SHOP_ID,
        secret_key=settings.PAYMENT_SECRET_KEY,
        timeout=settings.PAYMENT_PROVIDER_TIMEOUT,
    )


@asynccontextmanager
async def provider_client(shared: bool) -> AsyncIterator[ProviderClient]:
    """The worker's shared client when `shared` (long-lived ASGI event loop), else a client closed
    after use: under WSGI Django runs each async view on a fresh, short-lived event loop, and a
    pooled connection must not outlive its loop."""
    if not shared:
        async with _new_client() as client:
            yield client
        return
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        client = _clients[loop] = _new_client()
    yield client


async def _call(client: ProviderClient, method: str, path: str, **kwargs: Any) -> Payment:
    try:
        async with asyncio.timeout(settings.PAYMENT_PROVIDER_TIMEOUT):
            status, body = await client.request(method, path, **kwargs)
    except (TimeoutError, httpx.TimeoutException) as exc:
        raise ProviderTimeout(
            f"payment provider did not answer within {settings.PAYMENT_PROVIDER_TIMEOUT:g} s"
        ) from exc
    except httpx.HTTPError as exc:
        raise ProviderUnavailable(f"payment provider unreachable: {type(exc).__name__}") from exc
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
        client, "POST", "/v3/payments", json_body=body, headers=[("Idempotence-Key", key)]
    )


async def fetch_payment(client: ProviderClient, payment_id: str) -> Payment:
    """GET /v3/payments/{id}: the provider's authoritative view of a payment."""
    return await _call(client, "GET", f"/v3/payments/{payment_id}")
