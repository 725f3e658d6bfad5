"""Polling for conditions that other processes (the control plane, kopf) make true."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest


def wait_for(what: str, condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll ``condition`` every 0.25 s; fail the test naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.25)
