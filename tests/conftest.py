"""Fixtures shared by the whole suite: the local Kubernetes control plane.

The cluster is session-scoped and started lazily, only when a selected test asks
for it, so runs that touch only the app never build or start Go programs. Every
test that uses it (directly or through another fixture) is marked ``cluster``
automatically, so ``pytest -m "not cluster"`` skips them all.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import subprocess

    from tests.cluster.localcluster import LocalCluster


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build the control plane before the first test when a selected test is marked ``cluster``.

    A cold build takes far longer than the per-test timeout (pytest.ini), so it must not
    happen inside a test's set-up; hooks are not timed. App-only runs build nothing.
    """
    if session.config.option.collectonly:
        return
    if not any(item.get_closest_marker("cluster") for item in session.items):
        return
    from tests.cluster.build import BuildError, ensure_binaries

    progress = _terminal_progress(session.config)
    try:
        ensure_binaries(progress)
    except BuildError as err:  # the `cluster` fixture raises it again for each test
        progress(f"!! {err}")


def _terminal_progress(config: pytest.Config) -> Callable[[str], None]:
    """Progress lines that reach the terminal even under output capture (a cold build is long)."""
    capman = config.pluginmanager.getplugin("capturemanager")
    reporter = config.pluginmanager.getplugin("terminalreporter")

    def progress(message: str) -> None:
        if capman is None or reporter is None:
            print(message, flush=True)
            return
        with capman.global_and_fixture_disabled():
            reporter.write_line(message)

    return progress


@pytest.fixture(scope="session")
def cluster(pytestconfig: pytest.Config) -> Iterator[LocalCluster]:
    """A started LocalCluster (etcd, apiserver, controller-manager, scheduler, kwok, CRDs)."""
    from tests.cluster.localcluster import LocalCluster

    progress = _terminal_progress(pytestconfig)
    with LocalCluster(progress=progress) as local:
        started = local.timings["total"] - local.timings["binaries"]
        progress(
            f"\n>> local Kubernetes cluster at {local.server} started in {started:.1f}s "
            f"(/readyz after {local.timings['readyz'] - local.timings['binaries']:.1f}s; "
            f"logs: {local.run_dir})"
        )
        yield local


@pytest.fixture
def kubectl(cluster: LocalCluster) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``kubectl(*args, input=None, check=True)`` against the session cluster, with our kubectl."""
    return cluster.kubectl


@pytest.fixture
def namespace(cluster: LocalCluster) -> Iterator[str]:
    """A fresh namespace for one test, deleted (without waiting) afterwards."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
