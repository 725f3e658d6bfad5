"""One real operator process per test module, against the session's local control plane."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from .support import OperatorProcess

if TYPE_CHECKING:
    from tests.cluster.localcluster import LocalCluster

#: Watch streams are renewed this often in tests, so an idle test spans several renewals.
WATCH_TIMEOUT = 10.0


@pytest.fixture(scope="module")
def operator(cluster: LocalCluster) -> Iterator[OperatorProcess]:
    """``.venv/bin/coffee-operator run --all-namespaces --standalone``; SIGTERM at the end
    must make it exit 0 (clean shutdown)."""
    proc = OperatorProcess(cluster.env, ("--all-namespaces",), watch_timeout=WATCH_TIMEOUT)
    proc.start()
    yield proc
    alive = proc.alive()
    code = proc.stop()
    assert alive, f"the operator died during the tests:\n{proc.log_tail()}"
    assert code == 0, f"operator exit code {code} after SIGTERM:\n{proc.log_tail()}"
