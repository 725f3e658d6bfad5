"""A fingerprint of the rendered object, stored on the object itself.

The operator decides whether to write by comparing rendered vs. live on the fields
it renders (see :mod:`coffee_operator.drift`). That comparison alone cannot notice
a field the CR *stopped* asking for (a removed resource limit, env var or label):
the live object still has it and everything rendered still matches. Stamping a
hash of the whole rendered object into an annotation makes any change of the render
a visible difference, and server-side apply then drops the fields we no longer own.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

ANNOTATION = "coffee.example.com/fingerprint"


def fingerprint(obj: Mapping[str, Any]) -> str:
    """sha256 (first 16 hex digits) of the canonical JSON of ``obj`` minus the annotation."""
    clean: Mapping[str, Any] = obj
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations")
    if isinstance(annotations, Mapping) and ANNOTATION in annotations:
        # Copy only the two levels we change; the rest is serialised as it is.
        rest = {k: v for k, v in annotations.items() if k != ANNOTATION}
        new_meta = {k: v for k, v in meta.items() if k != "annotations"}
        if rest:
            new_meta["annotations"] = rest
        clean = {**obj, "metadata": new_meta}
    text = json.dumps(clean, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stamp(obj: dict[str, Any]) -> dict[str, Any]:
    """Set the fingerprint annotation on ``obj`` (in place, idempotent) and return it."""
    value = fingerprint(obj)
    obj.setdefault("metadata", {}).setdefault("annotations", {})[ANNOTATION] = value
    return obj


def stamped_value(obj: Mapping[str, Any] | None) -> str | None:
    """The fingerprint an object carries, if any."""
    if not obj:
        return None
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION)
