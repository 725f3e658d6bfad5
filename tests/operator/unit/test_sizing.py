"""SPEC section 3: worker count from spec or CPU, and the grace period rule."""

from __future__ import annotations

import pytest
from coffee_operator.errors import SpecError
from coffee_operator.sizing import (
    DEFAULT_WORKERS,
    GRACE_MARGIN_SECONDS,
    PRE_STOP_SECONDS,
    compute_workers,
    default_grace_period,
    minimum_grace_period,
)

# The spec's own examples, then millicores, decimals, exponents and integers.
CPU_CASES = [
    ("250m", 1),
    ("500m", 2),
    ("1", 3),
    ("1500m", 4),
    ("2", 5),
    ("4", 9),
    ("2000m", 5),
    ("1499m", 3),
    ("999m", 2),
    ("1m", 1),
    ("100m", 1),
    ("0", 1),
    ("0.1", 1),
    ("0.25", 1),
    ("0.5", 2),
    (".5", 2),
    ("1.5", 4),
    ("2.75", 6),
    ("1.", 3),
    ("2e0", 5),
    ("1E0", 3),
    ("5e-1", 2),
    ("25e-2", 1),
    ("0.02e2", 5),
    ("+2", 5),
    (2, 5),
    (4, 9),
    # Exactness: as a float this string is 2.5 (-> 6); as a Decimal it stays below 2.5.
    ("2.4999999999999999999", 5),
    ("1499999999n", 3),
    ("1500000000n", 4),
    ("1500000u", 4),
]


@pytest.mark.parametrize(("cpu", "workers"), CPU_CASES)
def test_cpu_limit_sizes_workers(cpu: object, workers: int) -> None:
    assert compute_workers(None, {"limits": {"cpu": cpu}}) == (workers, "CPULimit")


@pytest.mark.parametrize(("cpu", "workers"), CPU_CASES)
def test_cpu_request_sizes_workers_when_no_limit(cpu: object, workers: int) -> None:
    assert compute_workers(None, {"requests": {"cpu": cpu}}) == (workers, "CPURequest")


def test_limit_wins_over_request() -> None:
    assert compute_workers(None, {"limits": {"cpu": "2"}, "requests": {"cpu": "250m"}}) == (
        5,
        "CPULimit",
    )


def test_limits_without_cpu_fall_back_to_request() -> None:
    resources = {"limits": {"memory": "1Gi"}, "requests": {"cpu": "1", "memory": "512Mi"}}
    assert compute_workers(None, resources) == (3, "CPURequest")


def test_limits_without_cpu_and_no_request_is_default() -> None:
    assert compute_workers(None, {"limits": {"memory": "1Gi"}}) == (DEFAULT_WORKERS, "Default")


@pytest.mark.parametrize("resources", [None, {}, {"limits": {}, "requests": {}}])
def test_no_cpu_at_all_is_default_four(resources: object) -> None:
    assert compute_workers(None, resources) == (4, "Default")  # type: ignore[arg-type]


@pytest.mark.parametrize("resources", [None, {"limits": {"cpu": "4"}}, {"requests": {"cpu": "1"}}])
def test_explicit_workers_win(resources: object) -> None:
    assert compute_workers(7, resources) == (7, "Spec")  # type: ignore[arg-type]


def test_computed_count_is_clamped_to_the_workers_bound() -> None:
    assert compute_workers(None, {"limits": {"cpu": "127"}}) == (255, "CPULimit")
    assert compute_workers(None, {"limits": {"cpu": "128"}}) == (256, "CPULimit")
    assert compute_workers(None, {"limits": {"cpu": "1000"}}) == (256, "CPULimit")


@pytest.mark.parametrize(
    "cpu",
    # 1e3m: the Python client reads it as 1 core, but the API server's grammar has either
    # an SI suffix or an exponent, never both, so a Deployment with it would be refused.
    ["1e3m", "abc", "", " 1", "1 ", "1.5.0", "1e", "-1", "-500m", "1Q", 0.5, True, None, [1]],
)
def test_invalid_cpu_limit_names_the_field(cpu: object) -> None:
    if cpu is None:  # None means "not set", handled as absent
        assert compute_workers(None, {"limits": {"cpu": cpu}}) == (4, "Default")
        return
    with pytest.raises(SpecError) as err:
        compute_workers(None, {"limits": {"cpu": cpu}})
    assert err.value.field == "spec.resources.limits.cpu"
    assert str(err.value).startswith("spec.resources.limits.cpu: ")
    assert err.value.reason == "InvalidSpec"


def test_invalid_cpu_request_names_the_request_field() -> None:
    with pytest.raises(SpecError) as err:
        compute_workers(None, {"requests": {"cpu": "lots"}})
    assert err.value.field == "spec.resources.requests.cpu"


def test_grace_period_default_is_graceful_plus_prestop_plus_margin() -> None:
    assert PRE_STOP_SECONDS == 5 and GRACE_MARGIN_SECONDS == 5
    assert default_grace_period(30) == 40
    assert default_grace_period(1) == 11
    assert default_grace_period(30, pre_stop_seconds=10) == 45


def test_minimum_grace_period_is_strictly_above_drain_time() -> None:
    assert minimum_grace_period(30) == 36
    assert minimum_grace_period(30) > 30 + PRE_STOP_SECONDS
    assert default_grace_period(30) >= minimum_grace_period(30)
