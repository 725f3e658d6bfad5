"""An offline model of what the API server does with a CoffeeServer on create:
structural defaulting, OpenAPI schema validation (unknown fields refused, as
`kubectl apply` with strict field validation does), list-map key uniqueness and
the CRD's CEL rules (evaluated with cel-python).

Used only to prove the operator's parser accepts and refuses the same specs;
the real API server is exercised by the integration tests.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from functools import cache
from typing import Any

import celpy
import jsonschema
import yaml

from .helpers import CRD_PATH


@cache
def crd() -> dict[str, Any]:
    return yaml.safe_load(CRD_PATH.read_text())


def root_schema() -> dict[str, Any]:
    return crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


@cache
def _validator() -> jsonschema.Draft4Validator:
    schema = _closed(root_schema())
    # ObjectMeta: the schema may only restrict name; every other key is the server's own.
    schema["properties"]["metadata"].pop("additionalProperties", None)
    return jsonschema.Draft4Validator(schema)


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Structural defaulting: missing properties with a default get it, recursively
    (so a defaulted ``{}`` object then gets its own children's defaults)."""
    if isinstance(value, dict) and "properties" in schema:
        for key, sub in schema["properties"].items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
        for key, item in value.items():
            if key in schema["properties"]:
                apply_defaults(schema["properties"][key], item)
    elif isinstance(value, list) and "items" in schema:
        for item in value:
            apply_defaults(schema["items"], item)
    return value


def _closed(schema: Any) -> Any:
    if isinstance(schema, dict):
        out = {k: _closed(v) for k, v in schema.items()}
        if "properties" in out and not out.get("x-kubernetes-preserve-unknown-fields"):
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(schema, list):
        return [_closed(v) for v in schema]
    return schema


def _dotted(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _nodes(schema: dict[str, Any], value: Any, path: str) -> Iterator[tuple[str, dict, Any]]:
    yield path, schema, value
    if isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                yield from _nodes(sub, value[key], f"{path}.{key}" if path else key)
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            yield from _nodes(schema["items"], item, f"{path}[{i}]")


_ENV = celpy.Environment()
_PROGRAMS: dict[str, Any] = {}


def _cel(rule: str, value: Any) -> bool:
    if rule not in _PROGRAMS:
        _PROGRAMS[rule] = _ENV.program(_ENV.compile(rule))
    result = _PROGRAMS[rule].evaluate({"self": celpy.json_to_cel(value)})
    return result is True or (isinstance(result, celpy.celtypes.BoolType) and bool(result))


def rejection(obj: dict[str, Any]) -> str | None:
    """The dotted path of the first field the API server would refuse, or None."""
    schema = root_schema()
    obj = apply_defaults(schema, copy.deepcopy(obj))
    errors = sorted(_validator().iter_errors(obj), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        path = _dotted(err.absolute_path)
        if err.validator == "required":
            missing = err.message.split("'")[1]
            path = f"{path}.{missing}"
        elif err.validator == "additionalProperties":
            extra = err.message.split("'")[1]
            path = f"{path}.{extra}"
        return path
    for path, node, value in _nodes(schema, obj, ""):
        if node.get("x-kubernetes-list-type") == "map" and isinstance(value, list):
            keys = node["x-kubernetes-list-map-keys"]
            seen = set()
            for i, item in enumerate(value):
                key = tuple(item.get(k) for k in keys)
                if key in seen:
                    return f"{path}[{i}].{keys[0]}"
                seen.add(key)
        for rule in node.get("x-kubernetes-validations", []):
            if not _cel(rule["rule"], value):
                return path + rule.get("fieldPath", "")
    return None
