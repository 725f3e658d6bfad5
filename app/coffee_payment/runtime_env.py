"""Pure parsing of the runtime environment contract (the GUNICORN_* table and RUN_MODE).

The operator writes these variables into every Deployment, so a bad value must not
crash-loop the pod: it falls back to the documented default and yields one warning
naming the variable and the value (see the table in ``app/gunicorn.conf.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import environ

RUN_MODES = ("production", "development")
DEFAULT_RUN_MODE = "production"


@dataclass(frozen=True)
class IntVar:
    """One integer variable: its default and the smallest/largest valid value."""

    name: str
    default: int
    minimum: int
    maximum: int | None = None
    rule: str = ""


GUNICORN_VARS: tuple[IntVar, ...] = (
    IntVar("GUNICORN_WORKERS", 4, 1, rule="an integer >= 1"),
    IntVar("GUNICORN_PORT", 8000, 1, 65535, rule="an integer from 1 to 65535"),
    IntVar("GUNICORN_TIMEOUT", 30, 0, rule="an integer >= 0 (0 disables the heartbeat)"),
    IntVar("GUNICORN_GRACEFUL_TIMEOUT", 30, 0, rule="an integer >= 0"),
    IntVar("GUNICORN_MAX_REQUESTS", 0, 0, rule="an integer >= 0 (0 = never recycle)"),
    IntVar("GUNICORN_MAX_REQUESTS_JITTER", 0, 0, rule="an integer >= 0"),
)


@dataclass
class Parsed:
    """Resolved values plus the warnings to log for the ones that were rejected."""

    values: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def parse_int(var: IntVar, raw: str | None, default: int | None = None) -> tuple[int, str | None]:
    """Return (value, warning). Unset or blank means the default, silently."""
    fallback = var.default if default is None else default
    if raw is None or raw.strip() == "":
        return fallback, None
    text = raw.strip()
    try:
        value = int(text, 10)
    except ValueError:
        value = None
    if value is None or value < var.minimum or (var.maximum is not None and value > var.maximum):
        return fallback, (
            f"{var.name}={raw!r} is invalid (must be {var.rule}); using the default {fallback}"
        )
    return value, None


def parse_gunicorn_env(env: Mapping[str, str]) -> Parsed:
    """Resolve every GUNICORN_* variable; graceful timeout defaults to the timeout."""
    out = Parsed()
    for var in GUNICORN_VARS:
        default = None
        if var.name == "GUNICORN_GRACEFUL_TIMEOUT":
            default = out.values["GUNICORN_TIMEOUT"]
        value, warning = parse_int(var, env.get(var.name), default)
        out.values[var.name] = value
        if warning:
            out.warnings.append(warning)
    return out


def resolve_run_mode(env: Mapping[str, str]) -> tuple[str, str | None]:
    """RUN_MODE, lower-cased; anything but production/development falls back to production."""
    raw = env.get("RUN_MODE")
    if raw is None or raw.strip() == "":
        return DEFAULT_RUN_MODE, None
    mode = raw.strip().lower()
    if mode in RUN_MODES:
        return mode, None
    return DEFAULT_RUN_MODE, (
        f"RUN_MODE={raw!r} is invalid (must be one of {', '.join(RUN_MODES)}); "
        f"using the default {DEFAULT_RUN_MODE}"
    )


def debug_enabled(env: Mapping[str, str], run_mode: str) -> bool:
    """DJANGO_DEBUG with django-environ's boolean rules; defaults on only in development."""
    raw = env.get("DJANGO_DEBUG")
    if raw is None or raw.strip() == "":
        return run_mode == "development"
    return bool(environ.Env.parse_value(raw, bool))


def is_production(env: Mapping[str, str]) -> bool:
    """Production means RUN_MODE=production without DJANGO_DEBUG: secrets and HTTPS enforced."""
    mode, _ = resolve_run_mode(env)
    return mode == "production" and not debug_enabled(env, mode)
