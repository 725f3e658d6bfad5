"""Kubernetes resource quantities, parsed exactly.

``kubernetes.utils.quantity.parse_quantity`` does the arithmetic (``Decimal``,
no float rounding), but it is more lenient than the API server: it accepts
``"1e3m"``, surrounding blanks and floats, all of which the API server refuses
in a Deployment. We first apply the API server's own grammar (the same regular
expression the CRD schema uses), so a quantity we accept is one Kubernetes
accepts too.
"""

from __future__ import annotations

import re
from decimal import Decimal

from kubernetes.utils.quantity import parse_quantity

from .errors import SpecError

#: apimachinery's quantity grammar, as published in every generated CRD schema.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
_QUANTITY_RE = re.compile(QUANTITY_PATTERN)


def normalize_quantity(value: object, field: str) -> str:
    """Return ``value`` as the quantity string Kubernetes would store, or raise.

    Integers (``cpu: 2`` in YAML) are allowed, as the CRD's int-or-string does;
    floats are refused because the API server refuses them there too.
    Negative quantities are refused: no container resource may be negative.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise SpecError(
            field,
            f"must be a quantity string such as \"500m\" or \"1.5\" or an integer, "
            f"not {type(value).__name__} {value!r}",
        )
    text = str(value)
    if not _QUANTITY_RE.match(text):
        raise SpecError(
            field, f"{text!r} is not a valid Kubernetes quantity (e.g. 500m, 1.5, 2, 256Mi)"
        )
    try:
        parsed = parse_quantity(text)
    except ValueError as exc:  # grammar ok but e.g. an exponent the client cannot handle
        raise SpecError(field, f"{text!r} is not a valid Kubernetes quantity: {exc}") from exc
    if parsed < 0:
        raise SpecError(field, f"{text!r} must not be negative")
    return text


def parse(value: object, field: str) -> Decimal:
    """Validate like :func:`normalize_quantity` and return the exact ``Decimal`` value."""
    return parse_quantity(normalize_quantity(value, field))
