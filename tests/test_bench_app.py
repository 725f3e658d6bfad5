"""The app benchmarks run end to end and print their figures (tiny runs).

The figures themselves are measured by running the scripts (``make bench-app``); timing
targets are never asserted here. What is asserted is what must hold at any load: every
line the reader needs is printed, and no order, menu or shutdown request failed.
"""

from __future__ import annotations

import re

import pytest

from tests.support.benches import run_bench


@pytest.mark.postgres
@pytest.mark.slow
def test_payment_bench_compares_per_worker_count_with_a_cpu_budget() -> None:
    out = run_bench("app_payments.py", "--rounds", "1", "--seconds", "1", "--workers", "1,2",
                    "--servers", "uvicorn,sync")
    for workers, connections in ((1, 12), (2, 24)):
        assert f"{workers} workers, {connections} connections" in out, out
    assert len(re.findall(r"target throughput >= 10x sync: [\d.]+x", out)) == 2, out
    assert len(re.findall(r"target p99 <= 200 ms at that load", out)) == 2, out
    assert out.count("failed requests (uvicorn): 0") == 2, out
    budget = re.findall(r"CPU budget: ([\d.]+) ms per order .* allow at most (\d+) orders/s", out)
    assert len(budget) == 2 and all(float(ms) > 0 and int(cap) > 0 for ms, cap in budget), out
    answered = re.search(r"provider saw (\d+) payment requests for (\d+) orders answered", out)
    assert answered and int(answered[2]) > 0, out


@pytest.mark.slow
def test_menu_bench_reports_the_ratio_to_runserver() -> None:
    out = run_bench("app_menu.py", "--rounds", "1", "--seconds", "1",
                    "--servers", "runserver,uvicorn")
    assert re.search(r"uvicorn: +\d+ req/s .* errors 0 +[\d.]+x runserver", out), out
    assert re.search(r"target Gunicorn\+Uvicorn >= 3x runserver: [\d.]+x", out), out


@pytest.mark.slow
def test_shutdown_bench_loses_nothing_on_recycling_and_signals() -> None:
    out = run_bench("app_shutdown.py", "--duration", "2", "--workers-to-compare", "ours",
                    "--signal-workers", "ours", "--inflight", "100", "--slow", "1",
                    "--skip-keepalive")
    assert re.search(r"recycling +fresh-connection ours +\d+ requests +0 failed", out), out
    for signal in ("SIGTERM", "SIGINT"):
        assert re.search(rf"{signal} +ours +in-flight {{'ok': 100}}", out), out
    assert "PASS: targets met" in out, out
