"""Generate the CoffeeServer field reference from the CRD (the single source).

``python -m coffee_operator.docs`` prints a Markdown table of every spec field
(path, type, default, bounds/enum, description) plus the cross-field rules;
``--write`` replaces the part of README.md between the markers below, and
``--check`` exits 1 if README.md is out of date (for CI).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import crd
from .spec import COMPUTED_DEFAULTS

START = "<!-- fields:start -->"
END = "<!-- fields:end -->"


def type_of(node: dict[str, Any]) -> str:
    """Human-readable type, close to what ``kubectl explain`` prints."""
    if node.get("x-kubernetes-int-or-string"):
        return "quantity"
    kind = node.get("type", "")
    if kind == "array":
        return f"[]{type_of(node.get('items', {}))}"
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        return f"map[string]{type_of(node['additionalProperties'])}"
    if kind == "object" and node.get("x-kubernetes-preserve-unknown-fields"):
        return "object (free-form)"
    return kind


def default_of(node: dict[str, Any], path: str = "") -> str:
    if "default" not in node:
        computed = COMPUTED_DEFAULTS.get(path)
        return f"computed: {computed}" if computed else ""
    value = node["default"]
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if value == {}:
        return "`{}`"
    return f"`{value}`"


def bounds_of(node: dict[str, Any]) -> str:
    parts: list[str] = []
    if "enum" in node:
        parts.append(" | ".join(f"`{v}`" for v in node["enum"]))
    lo, hi = node.get("minimum"), node.get("maximum")
    if lo is not None and hi is not None:
        parts.append(f"{lo}..{hi}")
    elif lo is not None:
        parts.append(f">= {lo}")
    elif hi is not None:
        parts.append(f"<= {hi}")
    lo_len, hi_len = node.get("minLength"), node.get("maxLength")
    if lo_len is not None or hi_len is not None:
        parts.append(f"length {lo_len or 0}..{hi_len if hi_len is not None else ''}".rstrip("."))
    if "maxItems" in node:
        parts.append(f"<= {node['maxItems']} items")
    if node.get("x-kubernetes-list-type") == "map":
        keys = ", ".join(node.get("x-kubernetes-list-map-keys", []))
        parts.append(f"unique {keys}")
    return "; ".join(parts)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def rows() -> list[tuple[str, str, str, str, str]]:
    """(path, type, default, bounds, description) per documented spec field.

    Map-value nodes (``spec.resources.limits{}``) are folded into their parent's
    type (``map[string]quantity``) rather than listed on their own.
    """
    out = []
    parent_required: dict[str, set[str]] = {}
    for path, node in [("spec", crd.version_schema()["properties"]["spec"]), *crd.spec_fields()]:
        parent_required[path] = set(node.get("required", []))
        if path == "spec" or path.endswith("{}") or path.endswith("[]"):
            continue
        parent, _, name = path.rpartition(".")
        description = node.get("description", "")
        if name in parent_required.get(parent, set()):
            description = f"**Required.** {description}"
        out.append((path, type_of(node), default_of(node, path), bounds_of(node), description))
    return out


def rules() -> list[tuple[str, str]]:
    """(where, message) for every CEL ``x-kubernetes-validations`` rule on the spec."""
    found = []
    for path, node in [("spec", crd.version_schema()["properties"]["spec"]), *crd.spec_fields()]:
        for rule in node.get("x-kubernetes-validations", []):
            where = path + rule.get("fieldPath", "")
            message = rule.get("message", "")
            found.append((where, message))
    return found


def markdown() -> str:
    lines = [
        "| Field | Type | Default | Bounds / values | Description |",
        "| --- | --- | --- | --- | --- |",
    ]
    for path, kind, default, bounds, description in rows():
        cells = [f"`{path}`", kind, default, bounds, description]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    name = crd.version_schema()["properties"].get("metadata", {}).get("properties", {}).get("name")
    if name:
        lines += ["", f"`metadata.name`: {_cell(name.get('description', ''))}"]
    lines += ["", "Cross-field rules (checked by the API server and again by the operator):", ""]
    lines += [f"- `{where}`: {_cell(message)}" for where, message in rules()]
    return "\n".join(lines) + "\n"


def default_readme() -> Path:
    """README.md of the repository this package's CRD comes from (else the cwd's)."""
    source = Path(str(crd.resources.files(__package__).joinpath("crd.yaml"))).resolve()
    candidate = source.parent.parent / "README.md"
    return candidate if (candidate.parent / "crds").is_dir() else Path("README.md")


def splice(readme: str, table: str) -> str:
    """Replace the text between the markers; raise ValueError if they are missing."""
    start, end = readme.find(START), readme.find(END)
    if start < 0 or end < start:
        raise ValueError(f"README has no {START} ... {END} markers")
    return readme[: start + len(START)] + "\n" + table + readme[end:]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m coffee_operator.docs",
        description="Print the CoffeeServer field reference generated from the CRD.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true",
                      help=f"write it into README.md between {START} and {END}")
    mode.add_argument("--check", action="store_true",
                      help="exit 1 if README.md does not hold the current table")
    parser.add_argument("--readme", type=Path, default=None, help="README path (default: repo's)")
    args = parser.parse_args(argv)
    table = markdown()
    if not (args.write or args.check):
        sys.stdout.write(table)
        return 0
    path = args.readme or default_readme()
    current = path.read_text(encoding="utf-8") if path.exists() else f"{START}\n{END}\n"
    try:
        updated = splice(current, table)
    except ValueError as exc:
        print(f"error: {path}: {exc}", file=sys.stderr)
        return 1
    if args.check:
        if updated != current:
            print(f"error: {path} is out of date; run python -m coffee_operator.docs --write",
                  file=sys.stderr)
            return 1
        return 0
    if updated != current:
        path.write_text(updated, encoding="utf-8")
    print(f"wrote the field reference ({len(rows())} fields) to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
