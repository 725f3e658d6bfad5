"""Conditions and status: pure rules behind Ready/Progressing/Degraded and write-avoidance."""

from __future__ import annotations

from typing import Any

import pytest
from coffee_operator import conditions as c
from coffee_operator.status import desired_status, replica_counts, status_patch

T0 = "2026-01-01T00:00:00Z"
T1 = "2026-01-01T00:05:00Z"


def deployment(
    *,
    generation: int = 1,
    observed: int = 1,
    replicas: int = 2,
    updated: int = 2,
    total: int = 2,
    available: int = 2,
    ready: int = 2,
    conds: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {"generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "replicas": total,
            "updatedReplicas": updated,
            "availableReplicas": available,
            "readyReplicas": ready,
            "conditions": conds or [],
        },
    }


def by_type(conds: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {cond["type"]: cond for cond in conds}


def test_fully_rolled_out_deployment_is_ready() -> None:
    obs = c.Observation(generation=3, deployment=deployment(), in_sync=True)
    got = by_type(c.compute_conditions(obs, None, T0))
    assert got["Ready"]["status"] == "True"
    assert got["Ready"]["reason"] == c.ROLLOUT_COMPLETE
    assert got["Progressing"]["status"] == "False"
    assert got["Degraded"]["status"] == "False"
    for cond in got.values():
        assert cond["observedGeneration"] == 3
        assert cond["lastTransitionTime"] == T0
        assert set(cond) == {"type", "status", "reason", "message", "observedGeneration",
                             "lastTransitionTime"}


@pytest.mark.parametrize(
    ("dep", "fragment"),
    [
        (deployment(generation=2, observed=1), "observe the new spec"),
        (deployment(updated=1), "1 of 2 replicas updated"),
        (deployment(total=3), "1 old replicas pending termination"),
        (deployment(available=1), "1 of 2 updated replicas available"),
    ],
)
def test_incomplete_rollout_is_progressing_not_ready(dep: dict[str, Any], fragment: str) -> None:
    got = by_type(c.compute_conditions(
        c.Observation(generation=1, deployment=dep, in_sync=True), None, T0))
    assert got["Ready"]["status"] == "False"
    assert got["Progressing"]["status"] == "True"
    assert got["Progressing"]["reason"] == c.ROLLING_OUT
    assert fragment in got["Progressing"]["message"]
    assert got["Degraded"]["status"] == "False"


def test_not_ready_while_children_are_not_in_sync_with_the_generation() -> None:
    obs = c.Observation(generation=1, deployment=deployment(), in_sync=False)
    assert by_type(c.compute_conditions(obs, None, T0))["Ready"]["status"] == "False"


def test_zero_replicas_rolled_out_is_ready() -> None:
    dep = deployment(replicas=0, updated=0, total=0, available=0, ready=0)
    obs = c.Observation(generation=1, deployment=dep, in_sync=True)
    assert by_type(c.compute_conditions(obs, None, T0))["Ready"]["status"] == "True"


def test_missing_deployment_is_creating() -> None:
    got = by_type(c.compute_conditions(c.Observation(generation=1), None, T0))
    assert got["Ready"]["reason"] == c.CREATING
    assert got["Progressing"]["status"] == "True"


def test_invalid_spec_degrades_with_the_field_in_the_message() -> None:
    obs = c.Observation(
        generation=4,
        spec_error=("InvalidSpec", "spec.terminationGracePeriodSeconds: must exceed 35"),
        deployment=deployment(),
    )
    got = by_type(c.compute_conditions(obs, None, T0))
    assert got["Degraded"]["status"] == "True"
    assert got["Degraded"]["reason"] == "InvalidSpec"
    assert "spec.terminationGracePeriodSeconds" in got["Degraded"]["message"]
    assert got["Ready"]["status"] == "False"
    assert got["Progressing"]["status"] == "False"


def test_progress_deadline_exceeded_degrades() -> None:
    dep = deployment(available=0, conds=[{
        "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
        "message": 'ReplicaSet "shop-abc" has timed out progressing.'}])
    got = by_type(c.compute_conditions(
        c.Observation(generation=1, deployment=dep, in_sync=True), None, T0))
    assert got["Degraded"]["status"] == "True"
    assert got["Degraded"]["reason"] == c.PROGRESS_DEADLINE_EXCEEDED
    assert "timed out progressing" in got["Degraded"]["message"]
    assert got["Progressing"]["status"] == "False"
    assert got["Ready"]["status"] == "False"


def test_one_api_failure_retries_repeated_failures_degrade() -> None:
    first = by_type(c.compute_conditions(
        c.Observation(generation=1, apply_error="403 Forbidden: nope", failures=1), None, T0))
    assert first["Degraded"]["status"] == "False"
    assert first["Progressing"]["reason"] == c.RETRYING
    again = by_type(c.compute_conditions(
        c.Observation(generation=1, apply_error="403 Forbidden: nope",
                      failures=c.FAILURES_BEFORE_DEGRADED), None, T0))
    assert again["Degraded"]["status"] == "True"
    assert again["Degraded"]["reason"] == c.RECONCILE_FAILED
    assert "403 Forbidden: nope" in again["Degraded"]["message"]


def test_transition_time_changes_only_when_status_flips() -> None:
    rolling = c.compute_conditions(
        c.Observation(generation=1, deployment=deployment(available=1), in_sync=True), None, T0)
    # Same status again later (different message): timestamps stay.
    still = c.compute_conditions(
        c.Observation(generation=1, deployment=deployment(available=0), in_sync=True), rolling, T1)
    assert [x["lastTransitionTime"] for x in still] == [T0, T0, T0]
    # Ready flips to True and Progressing to False: only those two move.
    done = by_type(c.compute_conditions(
        c.Observation(generation=1, deployment=deployment(), in_sync=True), rolling, T1))
    assert done["Ready"]["lastTransitionTime"] == T1
    assert done["Progressing"]["lastTransitionTime"] == T1
    assert done["Degraded"]["lastTransitionTime"] == T0


def test_unchanged_world_gives_identical_conditions() -> None:
    obs = c.Observation(generation=2, deployment=deployment(), in_sync=True)
    first = c.compute_conditions(obs, None, T0)
    assert c.compute_conditions(obs, first, T1) == first


def test_foreign_condition_types_are_kept() -> None:
    previous = [{"type": "Audited", "status": "True", "reason": "X", "message": "",
                 "lastTransitionTime": T0}]
    got = c.compute_conditions(c.Observation(generation=1), previous, T1)
    assert [x["type"] for x in got] == ["Ready", "Progressing", "Degraded", "Audited"]


def test_every_reason_is_camel_case_and_documented() -> None:
    for reason, text in c.REASONS.items():
        assert reason[0].isupper() and reason.isalpha(), reason
        assert text


# --- status ---------------------------------------------------------------------------


def test_status_mirrors_replica_counts_and_effective_values() -> None:
    conds = c.compute_conditions(
        c.Observation(generation=5, deployment=deployment(ready=1), in_sync=True), None, T0)
    status = desired_status(generation=5, effective={"workers": 3, "workersSource": "CPULimit"},
                            deployment=deployment(ready=1), conditions=conds)
    assert status["observedGeneration"] == 5
    assert status["workers"] == 3 and status["workersSource"] == "CPULimit"
    assert (status["replicas"], status["readyReplicas"], status["updatedReplicas"],
            status["availableReplicas"]) == (2, 1, 2, 2)


def test_missing_deployment_reports_zero_replicas() -> None:
    assert replica_counts(None) == {"replicas": 0, "readyReplicas": 0, "updatedReplicas": 0,
                                    "availableReplicas": 0}


def test_invalid_spec_keeps_previously_reported_effective_values() -> None:
    status = desired_status(generation=2, effective=None, deployment=None, conditions=[])
    assert "workers" not in status  # the merge patch leaves the old value in place


def test_status_patch_is_none_when_nothing_changed_and_minimal_otherwise() -> None:
    current = {"observedGeneration": 1, "workers": 3, "conditions": [{"type": "Ready"}]}
    assert status_patch(current, dict(current)) is None
    assert status_patch(current, {**current, "workers": 5}) == {"workers": 5}
    assert status_patch(None, {"observedGeneration": 1}) == {"observedGeneration": 1}
