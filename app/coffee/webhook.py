"""Deciding whether a provider notification may change an order.

Authenticity does not rest on the notification's body (anyone can POST it): the order only moves
when the provider itself, asked over our authenticated API connection (GET /v3/payments/{id}, as
YooKassa recommends), reports the same final status for a payment that belongs to this order
with the same amount. The status change is a compare-and-set, so a replay is a no-op (409).
An optional source-IP allowlist (PAYMENT_WEBHOOK_ALLOWED_IPS, YooKassa publishes its ranges)
rejects strangers before any of that.
"""

import ipaddress
from collections.abc import Sequence

from coffee.models import Order
from coffee.payments import Payment
from coffee.validation import Notification


def ip_allowed(remote_addr: str, allowed: Sequence[str]) -> bool:
    """True when no allowlist is configured or `remote_addr` is inside one of its networks."""
    if not allowed:
        return True
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in allowed)


def mismatch(notification: Notification, payment: Payment, order: Order) -> str | None:
    """Why the provider's payment does not back this notification (None when it does)."""
    if payment.id != notification.payment_id:
        return "provider returned a different payment"
    if payment.order_id != str(order.id):
        return "payment does not belong to this order"
    if payment.amount != order.total or payment.currency != order.currency:
        return "payment amount does not match the order"
    if payment.status != notification.expected_status:
        expected = notification.expected_status
        return f"provider reports payment status {payment.status!r}, not {expected!r}"
    return None
