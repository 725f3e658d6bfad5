"""Kubernetes Events on the CoffeeServer: what the operator did and what went wrong.

kopf 1.45 posts nothing unless asked; ``kopf.event`` queues the Event and a kopf
background task posts it (core/v1, retried), so posting never slows a reconcile.
Events are derived from what a reconcile actually wrote or newly found wrong, never
from the mere fact that a reconcile ran: an idle operator posts nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import kopf

NORMAL = "Normal"
WARNING = "Warning"

CREATED = "Created"
UPDATED = "Updated"
DRIFT_CORRECTED = "DriftCorrected"
DELETED = "Deleted"
READY = "RolloutComplete"

#: Field paths quoted in a drift Event, at most (the rest is summarised as "+N more").
MAX_FIELDS = 4


def describe_fields(paths: Sequence[str]) -> str:
    shown = ", ".join(paths[:MAX_FIELDS])
    more = len(paths) - MAX_FIELDS
    return shown + (f" (+{more} more)" if more > 0 else "")


def action_message(action: str, kind: str, name: str, fields: Sequence[str]) -> str:
    if action == CREATED:
        return f"Created {kind} {name}"
    if action == UPDATED:
        return f"Updated {kind} {name} to the current spec ({describe_fields(fields)})"
    if action == DRIFT_CORRECTED:
        return f"{kind} {name} was changed outside the operator; put back {describe_fields(fields)}"
    if action == DELETED:
        return f"Deleted {kind} {name} (spec.service.enabled is false)"
    return f"{action} {kind} {name}"


def actions_message(action: str, name: str, items: Sequence[tuple[str, Sequence[str]]]) -> str:
    """One message for the same action on several children (``[(kind, fields)]``)."""
    if action == CREATED:
        return "Created " + ", ".join(f"{kind} {name}" for kind, _ in items)
    return "; ".join(action_message(action, kind, name, fields) for kind, fields in items)


def post(cr: Mapping[str, Any], event_type: str, reason: str, message: str) -> None:
    """Queue an Event on ``cr`` (posted in the background by kopf)."""
    kopf.event(dict(cr), type=event_type, reason=reason, message=message[:1024])
