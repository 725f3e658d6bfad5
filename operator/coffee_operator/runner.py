"""``coffee-operator run``: start kopf with the handlers of :mod:`coffee_operator.handlers`.

Scope, peering and liveness map one-to-one onto ``kopf.operator`` arguments. kopf
installs SIGTERM/SIGINT handlers itself and shuts down gracefully (handlers finish,
watches close, the cleanup handler closes our API session).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import logging
import os
import random
import sys
import types
from collections.abc import Callable
from typing import Any

ENV_PRIORITY = "COFFEE_OPERATOR_PRIORITY"
ENV_LIVENESS = "COFFEE_OPERATOR_LIVENESS"
ENV_PEERING = "COFFEE_OPERATOR_PEERING"
ENV_WATCH_TIMEOUT = "COFFEE_OPERATOR_WATCH_TIMEOUT"

GLOB_CHARS = set("*?[]!")


def _priority(args: argparse.Namespace, peering: str | None) -> int | None:
    """Explicit priority, else from the environment, else random when peering.

    kopf pauses every operator that sees a peer of the *same* priority, so replicas of
    one Deployment (same arguments) must differ: a random priority makes exactly one
    of them active and the others stand by.
    """
    if getattr(args, "priority", None) is not None:
        return int(args.priority)
    if os.environ.get(ENV_PRIORITY):
        return int(os.environ[ENV_PRIORITY])
    if peering:
        return random.SystemRandom().randint(1, 2**31 - 1)
    return None


def operator_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``kopf.operator`` arguments for the parsed ``run`` options (pure, for tests)."""
    namespaces = list(getattr(args, "namespace", None) or [])
    clusterwide = bool(getattr(args, "all_namespaces", False)) or not namespaces
    peering = getattr(args, "peering", None) or os.environ.get(ENV_PEERING) or None
    standalone = bool(getattr(args, "standalone", False)) or not peering
    return {
        "clusterwide": clusterwide,
        "namespaces": [] if clusterwide else namespaces,
        "standalone": standalone,
        "peering_name": None if standalone else peering,
        "priority": None if standalone else _priority(args, peering),
        "liveness_endpoint": getattr(args, "liveness", None)
        or os.environ.get(ENV_LIVENESS)
        or None,
    }


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def load_quantity_parser_only() -> None:
    """Make ``import kubernetes.utils.quantity`` load just that module (saves ~22 MB RSS).

    The quantity parser (used for CPU sizing and drift comparison) lives in the official
    client package, whose ``__init__`` imports the whole generated client (~700 model
    modules), and kopf imports that client too when it is installed, only to recognise its
    model objects -- which this operator never passes to kopf. For the long-running
    operator process, the ``kubernetes`` and ``kubernetes.utils`` packages are registered
    without running their ``__init__`` (their submodules still load from the real files),
    and ``kubernetes.client`` is marked absent so kopf skips its optional model support.
    ``render`` and the tests import the real package as usual.
    """
    if "kubernetes" in sys.modules:
        return
    spec = importlib.util.find_spec("kubernetes")
    if spec is None or not spec.submodule_search_locations:
        return
    package = types.ModuleType("kubernetes")
    package.__path__ = list(spec.submodule_search_locations)
    utils = types.ModuleType("kubernetes.utils")
    utils.__path__ = [os.path.join(path, "utils") for path in package.__path__]
    package.utils = utils  # type: ignore[attr-defined]
    sys.modules.update(
        {"kubernetes": package, "kubernetes.utils": utils, "kubernetes.client": None}
    )  # type: ignore[dict-item]


def run(args: argparse.Namespace) -> int:
    load_quantity_parser_only()
    import kopf

    from . import handlers

    kopf.configure(
        debug=getattr(args, "debug", False),
        verbose=getattr(args, "verbose", False),
        quiet=getattr(args, "quiet", False),
    )
    if not (getattr(args, "verbose", False) or getattr(args, "debug", False)):
        # kopf logs every handler call ("Handler 'child_changed' succeeded") at INFO: one line
        # per watch event. Our reconciler logs what it actually wrote instead.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    kwargs = operator_kwargs(args)
    timeout = getattr(args, "watch_timeout", None) or os.environ.get(ENV_WATCH_TIMEOUT)
    handlers.OPTIONS.watch_timeout = float(timeout) if timeout else None
    handlers.OPTIONS.exact_namespaces = not kwargs["clusterwide"] and not any(
        GLOB_CHARS & set(ns) for ns in kwargs["namespaces"]
    )
    logging.getLogger(__name__).info(
        "coffee-operator starting: %s, %s",
        "all namespaces"
        if kwargs["clusterwide"]
        else "namespaces " + ", ".join(kwargs["namespaces"]),
        "standalone"
        if kwargs["standalone"]
        else f"peering {kwargs['peering_name']!r} priority {kwargs['priority']}",
    )
    with (
        asyncio.Runner(loop_factory=_loop_factory()) as runner,
        contextlib.suppress(asyncio.CancelledError),
    ):
        runner.run(kopf.operator(**kwargs))
    return 0
