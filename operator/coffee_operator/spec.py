"""Parse and validate ``CoffeeServer.spec`` into frozen dataclasses.

The CRD schema does the same checks in the API server, but the operator cannot
trust that it ran (an older CRD may be installed, ``render`` reads raw files),
so everything is checked again here and every error names the field path.

``FIELDS`` is the parser's own table of types, defaults, bounds and enums. A
unit test walks ``crds/coffeeserver.yaml`` and the generated docs and proves all
three agree, so neither can drift without a red test.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import quantity
from .errors import SpecError
from .sizing import PRE_STOP_SECONDS, default_grace_period, minimum_grace_period

INT32_MAX = 2**31 - 1

PULL_POLICIES = ("Always", "IfNotPresent", "Never")
RUN_MODES = ("production", "development")
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")

#: Env vars the operator sets from the spec; a user env entry may not shadow them
#: (Kubernetes lets the last duplicate win silently, which would defeat the sizing).
RESERVED_ENV = (
    "GUNICORN_WORKERS",
    "GUNICORN_PORT",
    "GUNICORN_TIMEOUT",
    "GUNICORN_GRACEFUL_TIMEOUT",
    "GUNICORN_MAX_REQUESTS",
    "GUNICORN_MAX_REQUESTS_JITTER",
    "RUN_MODE",
)


@dataclass(frozen=True)
class Field:
    """One schema node. ``path`` uses ``[]`` for array items and ``{}`` for map values."""

    path: str
    type: str  # string | integer | boolean | object | array | quantity
    default: Any = None
    minimum: int | None = None
    maximum: int | None = None
    enum: tuple[str, ...] | None = None
    required: bool = False
    min_length: int | None = None
    max_length: int | None = None
    max_items: int | None = None
    #: arrays only: item key that must be unique (x-kubernetes-list-type: map)
    unique_key: str | None = None
    #: object whose content is passed through unchecked (x-kubernetes-preserve-unknown-fields)
    free_form: bool = False


def _ref(prefix: str) -> list[Field]:
    return [
        Field(prefix, "object"),
        Field(f"{prefix}.name", "string", required=True, min_length=1, max_length=253),
        Field(f"{prefix}.optional", "boolean"),
    ]


FIELDS: tuple[Field, ...] = (
    Field("spec.image", "string", required=True, min_length=1, max_length=1024),
    Field("spec.imagePullPolicy", "string", enum=PULL_POLICIES),
    Field("spec.imagePullSecrets", "array", max_items=16, unique_key="name"),
    Field("spec.imagePullSecrets[]", "object"),
    Field("spec.imagePullSecrets[].name", "string", required=True, min_length=1, max_length=253),
    Field("spec.replicas", "integer", default=2, minimum=0, maximum=INT32_MAX),
    Field("spec.port", "integer", default=8000, minimum=1, maximum=65535),
    Field("spec.resources", "object"),
    Field("spec.resources.limits", "object"),
    Field("spec.resources.limits{}", "quantity"),
    Field("spec.resources.requests", "object"),
    Field("spec.resources.requests{}", "quantity"),
    Field("spec.gunicorn", "object", default={}),
    Field("spec.gunicorn.workers", "integer", minimum=1, maximum=256),
    Field("spec.gunicorn.timeout", "integer", default=30, minimum=1, maximum=3600),
    Field("spec.gunicorn.gracefulTimeout", "integer", minimum=1, maximum=3600),
    Field("spec.gunicorn.maxRequests", "integer", default=0, minimum=0, maximum=INT32_MAX),
    Field("spec.gunicorn.maxRequestsJitter", "integer", default=0, minimum=0, maximum=INT32_MAX),
    Field("spec.terminationGracePeriodSeconds", "integer", minimum=1, maximum=86400),
    Field("spec.runMode", "string", default="production", enum=RUN_MODES),
    Field("spec.env", "array", max_items=256, unique_key="name"),
    Field("spec.env[]", "object"),
    Field("spec.env[].name", "string", required=True, min_length=1, max_length=256),
    Field("spec.env[].value", "string"),
    Field("spec.env[].valueFrom", "object", free_form=True),
    Field("spec.envFrom", "array", max_items=64),
    Field("spec.envFrom[]", "object"),
    Field("spec.envFrom[].prefix", "string", max_length=256),
    *_ref("spec.envFrom[].configMapRef"),
    *_ref("spec.envFrom[].secretRef"),
    Field("spec.service", "object", default={}),
    Field("spec.service.enabled", "boolean", default=True),
    Field("spec.service.type", "string", default="ClusterIP", enum=SERVICE_TYPES),
    Field("spec.service.port", "integer", default=80, minimum=1, maximum=65535),
)
FIELDS_BY_PATH: dict[str, Field] = {f.path: f for f in FIELDS}

#: Defaults that depend on other fields, so no schema ``default`` can express them;
#: resolved by :func:`coffee_operator.config.effective_config`, shown in the docs.
COMPUTED_DEFAULTS: dict[str, str] = {
    "spec.gunicorn.workers": "floor(2 x CPU limit) + 1, else from the CPU request, else 4",
    "spec.gunicorn.gracefulTimeout": "= timeout",
    "spec.terminationGracePeriodSeconds": "gracefulTimeout + 10 (5s preStop + 5s margin)",
}
_ROOT = Field("spec", "object")


@dataclass(frozen=True)
class GunicornSpec:
    workers: int | None = None
    timeout: int = 30
    graceful_timeout: int | None = None
    max_requests: int = 0
    max_requests_jitter: int = 0


@dataclass(frozen=True)
class ServiceSpec:
    enabled: bool = True
    type: str = "ClusterIP"
    port: int = 80


@dataclass(frozen=True)
class CoffeeServerSpec:
    """A validated spec with defaults applied. Mappings inside are private copies."""

    image: str
    image_pull_policy: str | None = None
    image_pull_secrets: tuple[str, ...] = ()
    replicas: int = 2
    port: int = 8000
    #: ``{"limits": {name: quantity-string}, "requests": {...}}`` or None
    resources: Mapping[str, Mapping[str, str]] | None = None
    gunicorn: GunicornSpec = GunicornSpec()
    termination_grace_period_seconds: int | None = None
    run_mode: str = "production"
    env: tuple[Mapping[str, Any], ...] = ()
    env_from: tuple[Mapping[str, Any], ...] = ()
    service: ServiceSpec = ServiceSpec()


def _direct_children(path: str) -> dict[str, Field]:
    prefix = path + "."
    return {
        f.path[len(prefix):]: f
        for f in FIELDS
        if f.path.startswith(prefix) and "." not in f.path[len(prefix):]
        and not f.path[len(prefix):].endswith(("[]", "{}"))
    }


#: object path -> {property name: Field}, computed once (the parser runs per reconcile).
_CHILDREN: dict[str, dict[str, Field]] = {
    p: _direct_children(p) for p in ("spec", *(f.path for f in FIELDS if f.type == "object"))
}


def _check(value: Any, rule: Field, where: str) -> Any:
    """Type-check ``value`` against ``rule`` (recursively), returning a defaulted copy."""
    kind = rule.type
    if kind == "quantity":
        return quantity.normalize_quantity(value, where)
    if kind == "object":
        if not isinstance(value, Mapping):
            raise SpecError(where, f"must be an object, not {_typename(value)}")
        if rule.free_form:
            return copy.deepcopy(dict(value))
        item_rule = FIELDS_BY_PATH.get(rule.path + "{}")
        if item_rule is not None:  # a map such as resources.limits
            out_map = {}
            for key, item in value.items():
                if not isinstance(key, str) or not key:
                    raise SpecError(where, f"keys must be non-empty strings, not {key!r}")
                out_map[key] = _check(item, item_rule, f"{where}.{key}")
            return out_map
        children = _CHILDREN[rule.path]
        unknown = sorted(str(k) for k in value if k not in children)
        if unknown:
            known = ", ".join(children)
            raise SpecError(f"{where}.{unknown[0]}", f"unknown field (known: {known})")
        out: dict[str, Any] = {}
        for key, child in children.items():
            sub = f"{where}.{key}"
            if key in value and value[key] is not None:
                out[key] = _check(value[key], child, sub)
            elif child.required:
                raise SpecError(sub, "is required")
            elif child.default is not None:
                out[key] = _check(copy.deepcopy(child.default), child, sub)
        return out
    if kind == "array":
        if isinstance(value, str | bytes) or not isinstance(value, Sequence):
            raise SpecError(where, f"must be a list, not {_typename(value)}")
        if rule.max_items is not None and len(value) > rule.max_items:
            raise SpecError(where, f"must have at most {rule.max_items} items, has {len(value)}")
        item = FIELDS_BY_PATH[rule.path + "[]"]
        items = [_check(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        if rule.unique_key:
            seen: dict[Any, int] = {}
            for i, entry in enumerate(items):
                key = entry[rule.unique_key]
                if key in seen:
                    raise SpecError(
                        f"{where}[{i}].{rule.unique_key}",
                        f"duplicate {rule.unique_key} {key!r} (also {where}[{seen[key]}])",
                    )
                seen[key] = i
        return items
    if kind == "boolean":
        if not isinstance(value, bool):
            raise SpecError(where, f"must be true or false, not {_typename(value)} {value!r}")
        return value
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(where, f"must be an integer, not {_typename(value)} {value!r}")
        if rule.minimum is not None and value < rule.minimum:
            raise SpecError(where, f"must be >= {rule.minimum}, got {value}")
        if rule.maximum is not None and value > rule.maximum:
            raise SpecError(where, f"must be <= {rule.maximum}, got {value}")
        return value
    if kind == "string":
        if not isinstance(value, str):
            raise SpecError(where, f"must be a string, not {_typename(value)} {value!r}")
        if rule.min_length is not None and len(value) < rule.min_length:
            raise SpecError(where, "must not be empty" if rule.min_length == 1
                            else f"must be at least {rule.min_length} characters")
        if rule.max_length is not None and len(value) > rule.max_length:
            raise SpecError(where, f"must be at most {rule.max_length} characters")
        if rule.enum is not None and value not in rule.enum:
            raise SpecError(where, f"must be one of {', '.join(rule.enum)}; got {value!r}")
        return value
    raise AssertionError(f"unknown field type {kind!r} in FIELDS")  # pragma: no cover


def _typename(value: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", int: "integer",
            float: "number", type(None): "null"}.get(type(value), type(value).__name__)


def _check_env(env: list[dict[str, Any]]) -> None:
    for i, item in enumerate(env):
        name = item["name"]
        where = f"spec.env[{i}]"
        if "=" in name:
            raise SpecError(f"{where}.name", f"{name!r} must not contain '='")
        if name in RESERVED_ENV:
            raise SpecError(
                f"{where}.name",
                f"{name} is set by the operator from the spec; set it through "
                f"spec.gunicorn / spec.port / spec.runMode instead",
            )
        if "value" in item and "valueFrom" in item:
            raise SpecError(f"{where}.valueFrom", "cannot be set together with value")


def _check_env_from(env_from: list[dict[str, Any]]) -> None:
    for i, item in enumerate(env_from):
        if ("configMapRef" in item) == ("secretRef" in item):
            raise SpecError(
                f"spec.envFrom[{i}]", "must set exactly one of configMapRef or secretRef"
            )


def _check_resources(resources: Mapping[str, Mapping[str, str]]) -> None:
    limits = resources.get("limits") or {}
    for name, request in (resources.get("requests") or {}).items():
        if name in limits:
            req = quantity.parse(request, f"spec.resources.requests.{name}")
            lim = quantity.parse(limits[name], f"spec.resources.limits.{name}")
            if req > lim:
                raise SpecError(
                    f"spec.resources.requests.{name}",
                    f"{request} must be less than or equal to "
                    f"spec.resources.limits.{name} ({limits[name]})",
                )


def parse_spec(spec: Mapping[str, Any] | None) -> CoffeeServerSpec:
    """Validate ``spec`` and apply defaults; raise :class:`SpecError` naming the field."""
    if spec is None:
        raise SpecError("spec", "is required (at least spec.image)")
    raw = _check(spec, _ROOT, "spec")
    g = raw["gunicorn"]
    if g["maxRequestsJitter"] > 0 and g["maxRequests"] == 0:
        raise SpecError(
            "spec.gunicorn.maxRequestsJitter",
            "needs spec.gunicorn.maxRequests > 0: with maxRequests 0 workers are never "
            "recycled and the jitter would be silently ignored",
        )
    graceful = g.get("gracefulTimeout", g["timeout"])
    grace = raw.get("terminationGracePeriodSeconds")
    if grace is not None and grace < minimum_grace_period(graceful):
        raise SpecError(
            "spec.terminationGracePeriodSeconds",
            f"{grace} is too short: Gunicorn needs gracefulTimeout ({graceful}s) + preStop delay "
            f"({PRE_STOP_SECONDS}s) = {graceful + PRE_STOP_SECONDS}s to drain, so the minimum is "
            f"{minimum_grace_period(graceful)} (leave it unset for the default "
            f"{default_grace_period(graceful)})",
        )
    env = raw.get("env", [])
    _check_env(env)
    env_from = raw.get("envFrom", [])
    _check_env_from(env_from)
    resources = raw.get("resources")
    if resources is not None:
        _check_resources(resources)
    svc = raw["service"]
    return CoffeeServerSpec(
        image=raw["image"],
        image_pull_policy=raw.get("imagePullPolicy"),
        image_pull_secrets=tuple(s["name"] for s in raw.get("imagePullSecrets", [])),
        replicas=raw["replicas"],
        port=raw["port"],
        resources=resources,
        gunicorn=GunicornSpec(
            workers=g.get("workers"),
            timeout=g["timeout"],
            graceful_timeout=g.get("gracefulTimeout"),
            max_requests=g["maxRequests"],
            max_requests_jitter=g["maxRequestsJitter"],
        ),
        termination_grace_period_seconds=grace,
        run_mode=raw["runMode"],
        env=tuple(env),
        env_from=tuple(env_from),
        service=ServiceSpec(enabled=svc["enabled"], type=svc["type"], port=svc["port"]),
    )
