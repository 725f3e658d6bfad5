"""Effective configuration: what the pod will actually run with.

Both the Deployment's env vars and the CR's status come from this one object,
so what the status reports is, by construction, what the pod was given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .sizing import PRE_STOP_SECONDS, WorkersSource, compute_workers, default_grace_period
from .spec import CoffeeServerSpec


@dataclass(frozen=True)
class EffectiveConfig:
    workers: int
    workers_source: WorkersSource
    timeout: int
    graceful_timeout: int
    max_requests: int
    max_requests_jitter: int
    termination_grace_period_seconds: int
    pre_stop_seconds: int
    port: int
    run_mode: str
    replicas: int


def effective_config(spec: CoffeeServerSpec) -> EffectiveConfig:
    """Resolve defaults that depend on other fields (workers, gracefulTimeout, grace period)."""
    g = spec.gunicorn
    workers, source = compute_workers(g.workers, spec.resources)
    graceful = g.graceful_timeout if g.graceful_timeout is not None else g.timeout
    grace = spec.termination_grace_period_seconds
    if grace is None:
        grace = default_grace_period(graceful, PRE_STOP_SECONDS)
    return EffectiveConfig(
        workers=workers,
        workers_source=source,
        timeout=g.timeout,
        graceful_timeout=graceful,
        max_requests=g.max_requests,
        max_requests_jitter=g.max_requests_jitter,
        termination_grace_period_seconds=grace,
        pre_stop_seconds=PRE_STOP_SECONDS,
        port=spec.port,
        run_mode=spec.run_mode,
        replicas=spec.replicas,
    )


def gunicorn_env(cfg: EffectiveConfig) -> list[dict[str, str]]:
    """The app container's operator-owned env vars (SPEC section 5), in a fixed order."""
    pairs: list[tuple[str, Any]] = [
        ("GUNICORN_WORKERS", cfg.workers),
        ("GUNICORN_PORT", cfg.port),
        ("GUNICORN_TIMEOUT", cfg.timeout),
        ("GUNICORN_GRACEFUL_TIMEOUT", cfg.graceful_timeout),
        ("GUNICORN_MAX_REQUESTS", cfg.max_requests),
        ("GUNICORN_MAX_REQUESTS_JITTER", cfg.max_requests_jitter),
        ("RUN_MODE", cfg.run_mode),
    ]
    return [{"name": name, "value": str(value)} for name, value in pairs]


def status_fields(cfg: EffectiveConfig) -> dict[str, Any]:
    """The effective values as camelCase ``status`` keys (every one declared in the CRD)."""
    return {
        "workers": cfg.workers,
        "workersSource": cfg.workers_source,
        "timeout": cfg.timeout,
        "gracefulTimeout": cfg.graceful_timeout,
        "maxRequests": cfg.max_requests,
        "maxRequestsJitter": cfg.max_requests_jitter,
        "terminationGracePeriodSeconds": cfg.termination_grace_period_seconds,
    }
