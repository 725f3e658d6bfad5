"""The CoffeeServer's ``status``: built purely, written only when it differs.

The desired status is assembled from the effective configuration, the live
Deployment's replica counts and the conditions; :func:`status_patch` then keeps only
the keys whose values changed, so an unchanged world produces no status write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

REPLICA_KEYS = ("replicas", "readyReplicas", "updatedReplicas", "availableReplicas")


def replica_counts(deployment: Mapping[str, Any] | None) -> dict[str, int]:
    """The Deployment's replica counts (0 when absent: the API server omits zeros)."""
    st = (deployment or {}).get("status") or {}
    return {key: int(st.get(key) or 0) for key in REPLICA_KEYS}


def desired_status(
    *,
    generation: int,
    effective: Mapping[str, Any] | None,
    deployment: Mapping[str, Any] | None,
    conditions: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """Everything the operator reports. ``effective`` is None for an invalid spec: the
    previously reported effective values stay, as they still describe the running pods."""
    status: dict[str, Any] = {"observedGeneration": generation}
    if effective is not None:
        status.update(effective)
    status.update(replica_counts(deployment))
    status["conditions"] = [dict(c) for c in conditions]
    return status


def status_patch(
    current: Mapping[str, Any] | None, desired: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The keys of ``desired`` that differ from ``current`` (a merge patch), or None."""
    current = current or {}
    changed = {key: value for key, value in desired.items() if current.get(key) != value}
    return changed or None
