"""The coffee API: async views, async ORM, one pooled async HTTP client per worker.

The API is CSRF-exempt: it is a machine API that reads no cookies and no session, so there is
no ambient browser credential for a cross-site request to abuse; the webhook is called by the
payment provider, which cannot hold a CSRF token. The admin keeps Django's CSRF protection.
"""

import uuid

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from coffee import db, menu, orders, payments, webhook
from coffee.http import error, methods
from coffee.models import Order, OrderStatus
from coffee.validation import BadRequest, parse_notification, parse_order_request


def _long_lived_loop(request: HttpRequest) -> bool:
    """Under ASGI the worker's event loop lives as long as the process, so pooled connections
    (provider, PostgreSQL) can be kept on it; under WSGI each request gets a fresh loop."""
    return isinstance(request, ASGIRequest)


def _client(request: HttpRequest):
    return payments.provider_client(shared=_long_lived_loop(request))


async def _order_or_404(order_id: str) -> Order | JsonResponse:
    try:
        pk = uuid.UUID(order_id)
    except ValueError:
        return error(404, f"no order {order_id!r}")
    try:
        return await db.run(Order.objects.select_related("drink").get, pk=pk)
    except Order.DoesNotExist:
        return error(404, f"no order {order_id!r}")


def _notified_order(payment_id: str, order_id: str) -> Order | None:
    """The order a notification is about: by payment id, else by the order id in metadata."""
    found = Order.objects.select_related("drink")
    order = found.filter(payment_id=payment_id).first()
    if order is None and order_id:
        try:
            order = found.get(pk=uuid.UUID(order_id))
        except (ValueError, Order.DoesNotExist):
            order = None
    return order


def _payment_failed(order: Order, exc: payments.PaymentProviderError) -> JsonResponse:
    return error(
        exc.http_status,
        exc.message,
        order=orders.order_json(order, order.drink.slug),
        retry=f"/api/orders/{order.id}/pay",
    )


@csrf_exempt
@methods("GET", "HEAD")
async def menu_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(await menu.menu_bytes(), content_type="application/json")


@csrf_exempt
@methods("POST")
async def create_order(request: HttpRequest) -> HttpResponse:
    try:
        wanted = parse_order_request(request.body)
    except BadRequest as exc:
        return error(400, exc.message, exc.field)
    on_loop = _long_lived_loop(request)
    drink = await db.drink_on_menu(wanted.drink, on_loop=on_loop)
    if drink is None:
        return error(404, f"no drink {wanted.drink!r} on the menu", "drink")
    order = Order(
        drink=drink,
        quantity=wanted.quantity,
        total=orders.order_total(drink.price, wanted.quantity),
        currency=settings.PAYMENT_CURRENCY,
    )
    try:
        if on_loop:  # the hot path: the worker's client, no per-request context manager
            await orders.place(order, drink.name, payments.shared_client(), on_loop=True)
        else:
            async with _client(request) as client:
                await orders.place(order, drink.name, client)
    except payments.PaymentProviderError as exc:
        return _payment_failed(order, exc)
    response = JsonResponse(orders.order_json(order, drink.slug), status=201)
    response["Location"] = f"/api/orders/{order.id}"
    return response


@csrf_exempt
@methods("GET", "HEAD")
async def order_detail(request: HttpRequest, order_id: str) -> HttpResponse:
    order = await _order_or_404(order_id)
    if isinstance(order, JsonResponse):
        return order
    return JsonResponse(orders.order_json(order, order.drink.slug))


@csrf_exempt
@methods("POST")
async def retry_payment(request: HttpRequest, order_id: str) -> HttpResponse:
    """Pay an order whose payment could not be created; same Idempotence-Key, so never twice."""
    order = await _order_or_404(order_id)
    if isinstance(order, JsonResponse):
        return order
    if order.status not in orders.PAYABLE:
        if order.status == OrderStatus.AWAITING_PAYMENT:  # already has its payment: idempotent
            return JsonResponse(orders.order_json(order, order.drink.slug))
        return error(
            409,
            f"order is {order.status}; nothing to pay",
            order=orders.order_json(order, order.drink.slug),
        )
    try:
        async with _client(request) as client:
            await orders.retry(order, order.drink.name, client)
    except payments.PaymentProviderError as exc:
        return _payment_failed(order, exc)
    return JsonResponse(orders.order_json(order, order.drink.slug))


@csrf_exempt
@methods("POST")
async def payment_webhook(request: HttpRequest) -> HttpResponse:
    if not webhook.ip_allowed(
        request.META.get("REMOTE_ADDR", ""), settings.PAYMENT_WEBHOOK_ALLOWED_IPS
    ):
        return error(403, "notification source address not allowed")
    try:
        note = parse_notification(request.body)
    except BadRequest as exc:
        return error(400, exc.message, exc.field)
    order = await db.run(_notified_order, note.payment_id, note.order_id)
    if order is None:
        return error(404, f"no order for payment {note.payment_id!r}", "object.id")
    try:
        async with _client(request) as client:
            payment = await payments.fetch_payment(client, note.payment_id)
    except payments.PaymentProviderError as exc:
        # Not the sender's fault: a 5xx makes the provider deliver the notification again later.
        return error(exc.http_status, f"cannot verify the notification: {exc.message}")
    reason = webhook.mismatch(note, payment, order)
    if reason is not None:
        return error(409, f"notification rejected: {reason}", "event")
    target = orders.PROVIDER_STATUS[payment.status]
    if not await orders.transition(order, target, payment_id=payment.id):
        return error(409, f"order is already {order.status}; notification ignored", "event")
    return JsonResponse({"order": orders.order_json(order, order.drink.slug)})


@csrf_exempt
async def not_found(request: HttpRequest, path: str = "") -> HttpResponse:
    return error(404, f"no API endpoint /api/{path}")
