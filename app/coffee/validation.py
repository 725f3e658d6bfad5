"""Pure parsing of API request bodies; every error names the offending field."""

import json
import re
from dataclasses import dataclass
from typing import Any

MAX_QUANTITY = 20
WEBHOOK_EVENTS = {"payment.succeeded": "succeeded", "payment.canceled": "canceled"}
# Provider payment ids are UUID-like; anything else never reaches a provider URL.
PAYMENT_ID_RE = re.compile(r"^[A-Za-z0-9-]{1,64}$")


class BadRequest(Exception):
    """A request body we refuse; `field` is the JSON field at fault ("body" for the whole body)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class OrderRequest:
    drink: str
    quantity: int


@dataclass(frozen=True)
class Notification:
    """A provider webhook notification, reduced to what we act on."""

    event: str
    payment_id: str
    expected_status: str  # the payment status the event claims: succeeded | canceled
    order_id: str  # metadata.order_id as the notification states it ("" when absent)


def parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("body", f"request body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequest("body", "request body must be a JSON object")
    return data


def parse_order_request(body: bytes) -> OrderRequest:
    data = parse_json_object(body)
    drink = data.get("drink")
    if not isinstance(drink, str) or not drink.strip():
        raise BadRequest("drink", "drink is required: the slug of a drink from GET /api/menu")
    quantity = data.get("quantity", 1)
    if (
        isinstance(quantity, bool)
        or not isinstance(quantity, int)
        or not 1 <= quantity <= MAX_QUANTITY
    ):
        raise BadRequest("quantity", f"quantity must be an integer from 1 to {MAX_QUANTITY}")
    unknown = sorted(set(data) - {"drink", "quantity"})
    if unknown:
        raise BadRequest(unknown[0], f"unknown field {unknown[0]!r}")
    return OrderRequest(drink=drink.strip(), quantity=quantity)


def parse_notification(body: bytes) -> Notification:
    """YooKassa-style {"type": "notification", "event": ..., "object": {payment}}."""
    data = parse_json_object(body)
    if data.get("type") != "notification":
        raise BadRequest("type", 'type must be "notification"')
    event = data.get("event")
    if event not in WEBHOOK_EVENTS:
        raise BadRequest("event", f"event must be one of {sorted(WEBHOOK_EVENTS)}")
    obj = data.get("object")
    if not isinstance(obj, dict):
        raise BadRequest("object", "object must be the payment object")
    payment_id = obj.get("id")
    if not isinstance(payment_id, str) or not PAYMENT_ID_RE.match(payment_id):
        raise BadRequest("object.id", "object.id must be a payment id")
    metadata = obj.get("metadata")
    order_id = metadata.get("order_id") if isinstance(metadata, dict) else None
    return Notification(
        event=event,
        payment_id=payment_id,
        expected_status=WEBHOOK_EVENTS[event],
        order_id=order_id if isinstance(order_id, str) else "",
    )
