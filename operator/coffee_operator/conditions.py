"""Ready / Progressing / Degraded conditions, computed purely from what was observed.

One function turns an :class:`Observation` (the CR's generation, a spec error if any,
the outcome of this reconcile's writes and the live Deployment) into the three
metav1.Condition entries. ``lastTransitionTime`` is carried over from the previous
conditions unless the status flips, so a reconcile that changes nothing produces
byte-identical conditions and therefore no status write.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

READY = "Ready"
PROGRESSING = "Progressing"
DEGRADED = "Degraded"
CONDITION_TYPES = (READY, PROGRESSING, DEGRADED)

#: Consecutive failed reconciles (API errors) before Degraded turns True. One failure is
#: usually a blip (a conflict, an apiserver restart) and is retried at once; two in a row
#: mean something the user should look at (RBAC, quota, admission policy...).
FAILURES_BEFORE_DEGRADED = 2

# Every reason the operator sets, with what it means (README troubleshooting uses this).
ROLLOUT_COMPLETE = "RolloutComplete"
ROLLING_OUT = "RollingOut"
CREATING = "Creating"
INVALID_SPEC = "InvalidSpec"
RECONCILE_FAILED = "ReconcileFailed"
RETRYING = "Retrying"
PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
REPLICA_FAILURE = "ReplicaFailure"
AS_EXPECTED = "AsExpected"

REASONS: dict[str, str] = {
    ROLLOUT_COMPLETE: "The Deployment for the current generation is fully rolled out "
    "and available.",
    ROLLING_OUT: "A rollout is under way (new pods starting, old ones terminating, or the "
    "Deployment controller has not yet seen the latest spec).",
    CREATING: "The Deployment does not exist yet; the operator is creating it.",
    INVALID_SPEC: "The spec passed the schema but cannot be run; the message names the field. "
    "The existing Deployment is left untouched until the spec is fixed.",
    RECONCILE_FAILED: "Writing the Deployment/Service keeps failing (RBAC, quota, admission "
    "policy, API errors); the message has the API server's answer. Retried with backoff.",
    RETRYING: "The last write failed once; the operator retries shortly.",
    PROGRESS_DEADLINE_EXCEEDED: "The rollout made no progress within the Deployment's "
    "progressDeadlineSeconds (image pull errors, crashing pods, unschedulable pods).",
    REPLICA_FAILURE: "The Deployment cannot create pods (e.g. quota or pod security admission).",
    AS_EXPECTED: "Nothing is wrong.",
}


@dataclass(frozen=True)
class Observation:
    """Everything the conditions depend on, gathered by one reconcile."""

    generation: int
    #: (reason, message) when the spec is invalid; the message names the field.
    spec_error: tuple[str, str] | None = None
    #: The API server's answer when this reconcile's write failed.
    apply_error: str | None = None
    #: Consecutive failed reconciles, this one included.
    failures: int = 0
    #: The live Deployment (after this reconcile's write), or None if absent.
    deployment: Mapping[str, Any] | None = None
    #: True when the live children match what the current generation renders.
    in_sync: bool = False


@dataclass(frozen=True)
class Rollout:
    """Where a Deployment's rollout stands, in the terms of ``kubectl rollout status``."""

    complete: bool
    failed: tuple[str, str] | None  # (reason, message) when the Deployment reports a failure
    message: str


def _deployment_condition(dep: Mapping[str, Any], ctype: str) -> Mapping[str, Any] | None:
    for cond in (dep.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return cond
    return None


def rollout(dep: Mapping[str, Any]) -> Rollout:
    """Judge a Deployment like ``kubectl rollout status`` does (same checks, same order)."""
    meta = dep.get("metadata") or {}
    spec = dep.get("spec") or {}
    st = dep.get("status") or {}
    desired = int(spec.get("replicas", 1))
    updated = int(st.get("updatedReplicas") or 0)
    total = int(st.get("replicas") or 0)
    available = int(st.get("availableReplicas") or 0)

    failed: tuple[str, str] | None = None
    progressing = _deployment_condition(dep, "Progressing")
    if progressing and progressing.get("reason") == PROGRESS_DEADLINE_EXCEEDED:
        failed = (PROGRESS_DEADLINE_EXCEEDED, str(progressing.get("message") or ""))
    replica_failure = _deployment_condition(dep, "ReplicaFailure")
    if failed is None and replica_failure and replica_failure.get("status") == "True":
        failed = (REPLICA_FAILURE, str(replica_failure.get("message") or ""))

    if int(st.get("observedGeneration") or 0) < int(meta.get("generation") or 0):
        return Rollout(
            False, failed, "waiting for the Deployment controller to observe the new spec"
        )
    if updated < desired:
        return Rollout(False, failed, f"{updated} of {desired} replicas updated")
    if total > updated:
        return Rollout(False, failed, f"{total - updated} old replicas pending termination")
    if available < updated:
        return Rollout(False, failed, f"{available} of {updated} updated replicas available")
    return Rollout(True, None, f"{available} of {desired} replicas available")


def _condition(
    ctype: str, status: bool, reason: str, message: str, generation: int
) -> dict[str, Any]:
    return {
        "type": ctype,
        "status": "True" if status else "False",
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
    }


def desired_conditions(obs: Observation) -> list[dict[str, Any]]:
    """The three conditions without timestamps (see :func:`merge_conditions`)."""
    gen = obs.generation
    if obs.spec_error is not None:
        reason, message = obs.spec_error
        text = f"{message}; fix the CoffeeServer spec (the running Deployment is left as it was)"
        return [
            _condition(READY, False, INVALID_SPEC, text, gen),
            _condition(PROGRESSING, False, INVALID_SPEC, "not rolling out an invalid spec", gen),
            _condition(DEGRADED, True, reason, text, gen),
        ]
    if obs.apply_error is not None:
        message = f"applying the Deployment/Service failed: {obs.apply_error}"
        if obs.failures >= FAILURES_BEFORE_DEGRADED:
            message += " (failing repeatedly; retrying with backoff)"
            return [
                _condition(READY, False, RECONCILE_FAILED, message, gen),
                _condition(PROGRESSING, False, RECONCILE_FAILED, message, gen),
                _condition(DEGRADED, True, RECONCILE_FAILED, message, gen),
            ]
        return [
            _condition(READY, False, RETRYING, message, gen),
            _condition(PROGRESSING, True, RETRYING, message + " (retrying)", gen),
            _condition(DEGRADED, False, AS_EXPECTED, "", gen),
        ]
    if obs.deployment is None:
        msg = "creating the Deployment"
        return [
            _condition(READY, False, CREATING, msg, gen),
            _condition(PROGRESSING, True, CREATING, msg, gen),
            _condition(DEGRADED, False, AS_EXPECTED, "", gen),
        ]
    state = rollout(obs.deployment)
    if state.complete and obs.in_sync:
        return [
            _condition(READY, True, ROLLOUT_COMPLETE, state.message, gen),
            _condition(PROGRESSING, False, ROLLOUT_COMPLETE, state.message, gen),
            _condition(DEGRADED, False, AS_EXPECTED, "", gen),
        ]
    if state.failed is not None:
        reason, detail = state.failed
        message = f"{detail}; check the pods (kubectl describe pods) and the image"
        return [
            _condition(READY, False, reason, message, gen),
            _condition(PROGRESSING, False, reason, message, gen),
            _condition(DEGRADED, True, reason, message, gen),
        ]
    return [
        _condition(READY, False, ROLLING_OUT, state.message, gen),
        _condition(PROGRESSING, True, ROLLING_OUT, state.message, gen),
        _condition(DEGRADED, False, AS_EXPECTED, "", gen),
    ]


def merge_conditions(
    desired: Sequence[Mapping[str, Any]],
    previous: Sequence[Mapping[str, Any]] | None,
    now: str,
) -> list[dict[str, Any]]:
    """Stamp ``lastTransitionTime``: kept from ``previous`` unless the status flipped.

    Conditions of other types (set by someone else) are kept as they were, after ours.
    """
    before = {c.get("type"): c for c in previous or [] if isinstance(c, Mapping)}
    merged: list[dict[str, Any]] = []
    for cond in desired:
        old = before.get(cond["type"])
        stamp = now
        if (
            old is not None
            and old.get("status") == cond["status"]
            and old.get("lastTransitionTime")
        ):
            stamp = old["lastTransitionTime"]
        merged.append({**cond, "lastTransitionTime": stamp})
    ours = {c["type"] for c in desired}
    merged.extend(dict(c) for t, c in before.items() if t not in ours)
    return merged


def compute_conditions(
    obs: Observation, previous: Sequence[Mapping[str, Any]] | None, now: str
) -> list[dict[str, Any]]:
    """The conditions to report for ``obs``, with transition times carried over."""
    return merge_conditions(desired_conditions(obs), previous, now)


def find(conditions: Sequence[Mapping[str, Any]] | None, ctype: str) -> Mapping[str, Any] | None:
    for cond in conditions or []:
        if cond.get("type") == ctype:
            return cond
    return None


def utc_now() -> str:
    """RFC 3339 in whole seconds, the format metav1.Time serialises to."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
