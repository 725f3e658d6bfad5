"""The operator benchmarks run end to end and print their figures (tiny counts).

The figures themselves are measured by running the scripts (``make bench-operator``);
this only keeps the scripts, and the reference operator they compare with, working.
"""

from __future__ import annotations

import pytest

from tests.support.benches import run_bench


@pytest.mark.cluster
@pytest.mark.slow
def test_latency_bench_measures_both_operators() -> None:
    out = run_bench("operator_latency.py", "--count", "3", "--warmup", "1", "--apiserver-only")
    for which in ("ours", "reference"):
        assert f"[{which}] CR create -> Deployment present, 3 sequential creates" in out
    assert out.count("from CR persisted : p50") == 2
    assert "ours vs reference (from CR persisted)" in out
    assert "APPLY apps/deployments=4" in out  # ours: one apply per Deployment
    assert "POST apps/deployments=4" in out  # the reference creates them too


@pytest.mark.cluster
@pytest.mark.slow
def test_scale_bench_reports_time_rss_writes_and_idle() -> None:
    out = run_bench("operator_scale.py", "--count", "20", "--idle", "1", "--apiserver-only",
                    "--operator", "ours")
    assert "[ours] 20 CoffeeServers created at once" in out
    assert "all statuses current" in out and "operator peak RSS (VmHWM)" in out
    assert "writes per child object      : Deployments 1.00, Services 1.00" in out
    assert "writes while idle 1s       : none" in out
    assert "CPU until reconciled         : " in out and "kube-apiserver" in out
