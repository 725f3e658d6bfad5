"""Section 3 of the spec: worker count and grace period, as pure arithmetic."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_FLOOR, Decimal
from typing import Any, Literal

from . import quantity

WorkersSource = Literal["Spec", "CPULimit", "CPURequest", "Default"]

#: Worker count when neither the spec nor the container's CPU says anything.
DEFAULT_WORKERS = 4
#: Bounds of ``spec.gunicorn.workers``; a computed count is clamped to the same range
#: (only matters above 127.5 cores) so the schema's bound holds for every source.
MIN_WORKERS = 1
MAX_WORKERS = 256

#: Seconds the preStop hook sleeps before the kubelet sends SIGTERM. Endpoint removal
#: reaches kube-proxy and ingress controllers asynchronously; 5 s covers that on a
#: healthy cluster without making every rollout noticeably slower.
PRE_STOP_SECONDS = 5
#: Extra seconds on top of preStop + gracefulTimeout for the default grace period:
#: Gunicorn's arbiter needs a moment after its workers' graceful timeout to reap them
#: and exit; without a margin a worker finishing at the deadline would get SIGKILL.
GRACE_MARGIN_SECONDS = 5


def workers_for_cores(cores: Decimal) -> int:
    """(2 x cores) + 1, floored exactly on the ``Decimal`` value, clamped to 1..256."""
    count = int((2 * cores).to_integral_value(rounding=ROUND_FLOOR)) + 1
    return max(MIN_WORKERS, min(MAX_WORKERS, count))


def compute_workers(
    explicit: int | None, resources: Mapping[str, Any] | None
) -> tuple[int, WorkersSource]:
    """Apply the first rule that fits: explicit, CPU limit, CPU request, default 4.

    ``resources`` is the app container's ResourceRequirements mapping
    (``{"limits": {...}, "requests": {...}}``); an invalid CPU quantity raises
    ``SpecError`` naming ``spec.resources.limits.cpu`` (or ``requests``).
    """
    if explicit is not None:
        return explicit, "Spec"
    resources = resources or {}
    for section, source in (("limits", "CPULimit"), ("requests", "CPURequest")):
        values = resources.get(section) or {}
        if "cpu" in values and values["cpu"] is not None:
            cores = quantity.parse(values["cpu"], f"spec.resources.{section}.cpu")
            return workers_for_cores(cores), source  # type: ignore[return-value]
    return DEFAULT_WORKERS, "Default"


def minimum_grace_period(graceful_timeout: int, pre_stop_seconds: int = PRE_STOP_SECONDS) -> int:
    """Smallest valid ``terminationGracePeriodSeconds``: strictly above drain + preStop."""
    return graceful_timeout + pre_stop_seconds + 1


def default_grace_period(graceful_timeout: int, pre_stop_seconds: int = PRE_STOP_SECONDS) -> int:
    """gracefulTimeout + preStop delay + safety margin."""
    return graceful_timeout + pre_stop_seconds + GRACE_MARGIN_SECONDS
