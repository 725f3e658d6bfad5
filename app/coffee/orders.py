"""Order lifecycle: totals, allowed status transitions, and paying an order at the provider.

Status changes are compare-and-set UPDATEs (`WHERE status IN (allowed sources)`), so concurrent
retries and replayed webhooks cannot move an order backwards or apply one transition twice.
"""

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.utils import timezone

from coffee import db, payments
from coffee.models import Order, OrderStatus

S = OrderStatus
# target status -> statuses it may be reached from
ALLOWED_FROM: dict[str, frozenset[str]] = {
    S.AWAITING_PAYMENT: frozenset({S.NEW, S.PAYMENT_FAILED}),
    S.PAYMENT_FAILED: frozenset({S.NEW, S.PAYMENT_FAILED}),
    S.PAID: frozenset({S.NEW, S.PAYMENT_FAILED, S.AWAITING_PAYMENT}),
    S.CANCELLED: frozenset({S.NEW, S.PAYMENT_FAILED, S.AWAITING_PAYMENT}),
}
PAYABLE = ALLOWED_FROM[S.AWAITING_PAYMENT]
# provider payment status -> our order status
PROVIDER_STATUS = {
    "pending": S.AWAITING_PAYMENT,
    "waiting_for_capture": S.AWAITING_PAYMENT,
    "succeeded": S.PAID,
    "canceled": S.CANCELLED,
}


def order_total(price: Decimal, quantity: int) -> Decimal:
    return (price * quantity).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def order_json(order: Order, drink_slug: str) -> dict[str, Any]:
    return {
        "id": str(order.id),
        "drink": drink_slug,
        "quantity": order.quantity,
        "total": f"{order.total:.2f}",
        "currency": order.currency,
        "status": order.status,
        "confirmation_url": order.confirmation_url or None,
        "payment_error": order.payment_error or None,
    }


async def transition(order: Order, target: str, **fields: Any) -> bool:
    """Move `order` to `target` if its stored status allows it; False (and no write) otherwise."""
    now = timezone.now()
    allowed = Order.objects.filter(pk=order.pk, status__in=ALLOWED_FROM[target])
    updated = await db.run(allowed.update, status=target, updated_at=now, **fields)
    if updated:
        order.status = target
        order.updated_at = now
        for name, value in fields.items():
            setattr(order, name, value)
    return bool(updated)


async def request_payment(
    order: Order, drink_name: str, client: payments.ProviderClient
) -> payments.Payment:
    """Create (or on retry re-obtain, same Idempotence-Key) the order's payment."""
    body = payments.payment_request(
        order_id=str(order.id),
        total=order.total,
        currency=order.currency,
        description=f"Order {order.id}: {order.quantity} x {drink_name}",
        return_url=settings.PAYMENT_RETURN_URL,
    )
    return await payments.create_payment(
        client, key=payments.idempotence_key(str(order.id)), body=body
    )


def payment_outcome(payment: payments.Payment) -> dict[str, Any]:
    """The order fields a created payment sets."""
    return {
        "status": PROVIDER_STATUS.get(payment.status, S.AWAITING_PAYMENT),
        "payment_id": payment.id,
        "confirmation_url": payment.confirmation_url,
        "payment_error": "",
    }


async def place(
    order: Order, drink_name: str, client: payments.ProviderClient, *, on_loop: bool = False
) -> None:
    """Pay for a new (unsaved) order, then store it once with the outcome.

    One INSERT instead of INSERT + UPDATE on the hot payment path. The order id (the
    Idempotence-Key) exists before the call, so nothing is lost if the call fails: the order
    is stored as PAYMENT_FAILED and PaymentProviderError re-raised for the caller to report.
    (If the process dies during the call, the client got no answer and no confirmation URL,
    so an unpaid provider payment without an order is harmless and expires at the provider.)
    `on_loop`: see coffee.db.insert.
    """
    try:
        payment = await request_payment(order, drink_name, client)
    except payments.PaymentProviderError as exc:
        order.status, order.payment_error = S.PAYMENT_FAILED, exc.message[:200]
        await db.insert(order, on_loop=on_loop)
        raise
    for name, value in payment_outcome(payment).items():
        setattr(order, name, value)
    await db.insert(order, on_loop=on_loop)


async def retry(order: Order, drink_name: str, client: payments.ProviderClient) -> None:
    """Pay for a stored order whose payment failed; records the outcome (compare-and-set)."""
    try:
        payment = await request_payment(order, drink_name, client)
    except payments.PaymentProviderError as exc:
        await transition(order, S.PAYMENT_FAILED, payment_error=exc.message[:200])
        raise
    outcome = payment_outcome(payment)
    if not await transition(order, outcome.pop("status"), **outcome):
        await db.run(order.refresh_from_db)  # a webhook got there first; report what is stored
