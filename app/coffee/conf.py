"""Payment and menu settings read from the environment, validated with errors naming the
variable (imported by coffee_payment.settings; pure: no Django models)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class PaymentSettings:
    provider_url: str
    provider_timeout: float
    shop_id: str
    secret_key: str
    currency: str
    return_url: str
    webhook_allowed_ips: list[str]
    menu_cache_seconds: float


def _number(
    env: Mapping[str, str], name: str, default: float, *, minimum: float, inclusive: bool
) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (value >= minimum if inclusive else value > minimum):  # also rejects NaN
        bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
        raise ImproperlyConfigured(f"{name} must be a number of seconds {bound}, not {raw!r}")
    return value


def _url(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name, "").strip() or default
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ImproperlyConfigured(f"{name} must be an http(s) URL, not {raw!r}")
    return raw.rstrip("/") if name == "PAYMENT_PROVIDER_URL" else raw


def _networks(env: Mapping[str, str], name: str) -> list[str]:
    items = [item.strip() for item in env.get(name, "").split(",") if item.strip()]
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"{name}: {item!r} is not an IP address or CIDR network"
            ) from exc
    return items


def read_payment_settings(env: Mapping[str, str]) -> PaymentSettings:
    currency = env.get("PAYMENT_CURRENCY", "").strip().upper() or "RUB"
    if len(currency) != 3 or not currency.isalpha():
        raise ImproperlyConfigured(
            f"PAYMENT_CURRENCY must be an ISO 4217 code like RUB, not {currency!r}"
        )
    return PaymentSettings(
        provider_url=_url(env, "PAYMENT_PROVIDER_URL", "http://127.0.0.1:8090"),
        provider_timeout=_number(env, "PAYMENT_PROVIDER_TIMEOUT", 5.0, minimum=0, inclusive=False),
        shop_id=env.get("PAYMENT_SHOP_ID", ""),
        secret_key=env.get("PAYMENT_SECRET_KEY", ""),
        currency=currency,
        return_url=_url(env, "PAYMENT_RETURN_URL", "http://localhost:8000/"),
        webhook_allowed_ips=_networks(env, "PAYMENT_WEBHOOK_ALLOWED_IPS"),
        menu_cache_seconds=_number(env, "MENU_CACHE_SECONDS", 5.0, minimum=0, inclusive=True),
    )
