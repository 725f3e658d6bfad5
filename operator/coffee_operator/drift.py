"""Rendered vs. live: which of the fields we render differ in the live object.

The comparison is a *subset* check: every field the operator renders must be present
with the same value in the live object; fields the API server defaults or other
controllers own (``status``, ``clusterIP``, ``terminationMessagePath``...) are ignored,
just as server-side apply leaves them alone. That is what lets a reconcile with
nothing to change send no write at all, even though the live object never looks
exactly like the render.

Two normalisations match what the API server does on write: an empty map or list
equals an absent one (Go's ``omitempty``), and resource quantities compare by value
(``"1.5"`` is stored as ``"1500m"``, ``"2000m"`` as ``"2"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from kubernetes.utils.quantity import parse_quantity

#: Maps whose values are resource quantities (ResourceRequirements.limits/requests).
_QUANTITY_MAPS = frozenset({"limits", "requests"})


def _empty(value: Any) -> bool:
    return value is None or value == {} or value == []


def _quantity(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        return parse_quantity(value)
    except (ValueError, TypeError, ArithmeticError):
        return None


def _item_label(item: Any, index: int) -> str:
    if isinstance(item, Mapping) and isinstance(item.get("name"), str):
        return f"[{item['name']}]"
    return f"[{index}]"


def matches(desired: Any, live: Any, quantities: bool = False, parent: str = "") -> bool:
    """True when ``live`` carries everything ``desired`` asks for (the common case, so it
    builds no path strings; :func:`differences` names the fields when it is False)."""
    if _empty(desired):
        return True
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return False
        return all(
            matches(
                value,
                live.get(key),
                quantities or (key in _QUANTITY_MAPS and parent == "resources"),
                key,
            )
            for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(live) == len(desired)
            and all(matches(w, h, quantities) for w, h in zip(desired, live, strict=True))
        )
    if desired == live and type(desired) is type(live):
        return True
    if quantities:
        want_q = _quantity(desired)
        return want_q is not None and want_q == _quantity(live)
    return False


def differences(desired: Any, live: Any, path: str = "", *, quantities: bool = False) -> list[str]:
    """Paths (``spec.template.spec.containers[app].env[GUNICORN_TIMEOUT].value``) where
    ``live`` does not carry what ``desired`` asks for. Empty list = nothing to write."""
    if not path and matches(desired, live):
        return []
    if _empty(desired):
        return []  # nothing asked for: server-side apply would not touch it either
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return [path or "(object)"]
        found: list[str] = []
        for key, value in desired.items():
            sub = f"{path}.{key}" if path else str(key)
            found += differences(
                value,
                live.get(key),
                sub,
                quantities=quantities or (key in _QUANTITY_MAPS and path.endswith("resources")),
            )
        return found
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) != len(desired):
            return [path]
        found = []
        for index, (want, have) in enumerate(zip(desired, live, strict=True)):
            found += differences(want, have, path + _item_label(want, index), quantities=quantities)
        return found
    if desired == live and type(desired) is type(live):
        return []
    if quantities:
        want_q, have_q = _quantity(desired), _quantity(live)
        if want_q is not None and want_q == have_q:
            return []
    return [path]
