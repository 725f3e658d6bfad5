"""Background reconciles: queued once per CoffeeServer, and retried when one crashes.

CR and child events only queue a reconcile (``Reconciler.request``); kopf's own handler
retry no longer covers them, so the reconciler must retry a reconcile that raised.
No API call is made here: the CR is reported gone once the lookup stops failing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from coffee_operator.kubeapi import KubeClient
from coffee_operator.reconcile import Reconciler
from coffee_operator.retrying import Retrier


class FlakyLookup:
    """Raises on the first ``failures`` CR reads (a bug, say), then finds no CR."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self, kind: str, namespace: str, name: str) -> Any:
        if kind == "CoffeeServer":
            self.calls += 1
            if self.calls <= self.failures:
                raise RuntimeError("boom")
        return None


def reconciler(lookup: FlakyLookup) -> Reconciler:
    return Reconciler(client=KubeClient(lambda: None), lookup=lookup,
                      retrier=Retrier(delays=(0.01, 0.02)))


def test_a_crashed_reconcile_is_retried_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    lookup = FlakyLookup(failures=2)

    async def scenario() -> None:
        rec = reconciler(lookup)
        rec.request(("cafe", "shop"), "CoffeeServer create")
        for _ in range(100):
            await asyncio.sleep(0.01)
            if lookup.calls >= 3 and not rec._tasks:
                break

    with caplog.at_level(logging.ERROR, logger="coffee_operator.reconcile"):
        asyncio.run(scenario())
    assert lookup.calls == 3  # two crashes, then a run that finds the CR gone
    assert caplog.text.count("cafe/shop: reconcile crashed; retrying") == 2


def test_requests_for_one_cr_are_coalesced_until_it_runs() -> None:
    lookup = FlakyLookup(failures=0)

    async def scenario() -> None:
        rec = reconciler(lookup)
        for _ in range(5):
            rec.request(("cafe", "shop"), "Deployment MODIFIED")
        rec.request(("cafe", "other"), "Deployment MODIFIED")
        await asyncio.sleep(0.05)

    asyncio.run(scenario())
    assert lookup.calls == 2  # one reconcile per CoffeeServer
