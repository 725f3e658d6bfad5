"""Polling for conditions that other processes (the control plane, kopf) make true."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def wait_for(
    what: str, condition: Callable[[], T], timeout: float = 60.0, interval: float = 0.25
) -> T:
    """Poll ``condition`` until it returns something truthy, and return that.

    Fails the test naming ``what`` and the last value seen after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        last = condition()
        if last:
            return last
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
        time.sleep(interval)
