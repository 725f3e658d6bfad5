"""The menu as ready-made JSON bytes, cached per worker process.

GET /api/menu is the hot path and the menu changes only through the admin, so each worker
renders it from the database at most once per MENU_CACHE_SECONDS. A drink saved or deleted in a
process drops that process's copy at once; other workers follow within MENU_CACHE_SECONDS.
Prices charged for orders are always read fresh from the database (see coffee.views).
"""

import json
import time
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from coffee.models import Drink

_cache: tuple[float, bytes] | None = None


def render_menu(drinks: Iterable[Drink], currency: str) -> bytes:
    body: dict[str, Any] = {
        "currency": currency,
        "drinks": [{"slug": d.slug, "name": d.name, "price": f"{d.price:.2f}"} for d in drinks],
    }
    return json.dumps(body, separators=(",", ":")).encode()


async def menu_bytes() -> bytes:
    global _cache
    now = time.monotonic()
    if _cache is not None and now < _cache[0]:
        return _cache[1]
    drinks = [d async for d in Drink.objects.filter(available=True).order_by("name")]
    rendered = render_menu(drinks, settings.PAYMENT_CURRENCY)
    _cache = (now + settings.MENU_CACHE_SECONDS, rendered)
    return rendered


def invalidate() -> None:
    global _cache
    _cache = None


@receiver(post_save, sender=Drink, dispatch_uid="coffee.menu.saved")
@receiver(post_delete, sender=Drink, dispatch_uid="coffee.menu.deleted")
def _drink_changed(**_: Any) -> None:
    invalidate()
