"""The ``coffee-operator`` command line: ``render``, ``crd`` and ``run``.

``render`` calls the very function the operator's handlers call
(:func:`coffee_operator.manifests.render_objects`), so what it prints is what
the operator applies. ``run`` imports kopf lazily: ``render`` stays fast and
needs no cluster.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TextIO

import yaml

from . import GROUP, KIND
from .errors import SpecError

EXIT_INVALID = 1  # a CoffeeServer is invalid (stderr names the field)
EXIT_USAGE = 2  # unreadable file, bad YAML, bad arguments (argparse's code too)


def _coffee_servers(docs: Sequence[Any]) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """Yield (document number, CoffeeServer) pairs; expands ``kind: List`` like kubectl."""
    for number, doc in enumerate(docs, start=1):
        if not isinstance(doc, Mapping):
            continue
        items = doc.get("items") if str(doc.get("kind", "")).endswith("List") else [doc]
        for item in items or []:
            if (
                isinstance(item, Mapping)
                and item.get("kind") == KIND
                and str(item.get("apiVersion", "")).split("/")[0] == GROUP
            ):
                yield number, item


def _describe(cr: Mapping[str, Any]) -> str:
    meta = cr.get("metadata") if isinstance(cr.get("metadata"), Mapping) else {}
    return f"{KIND} {meta.get('namespace') or 'default'}/{meta.get('name') or '?'}"


def render(source: TextIO, name: str, out: TextIO, err: TextIO) -> int:
    """Render every CoffeeServer in ``source``; all or nothing, so a pipe never half-applies."""
    # Imported here, not at module level: `run` must not load the full kubernetes client
    # (runner.load_quantity_parser_only) before the operator starts.
    from .manifests import render_objects

    try:
        docs = list(yaml.safe_load_all(source))
    except yaml.YAMLError as exc:
        print(f"error: {name}: not valid YAML: {exc}", file=err)
        return EXIT_USAGE
    chunks: list[str] = []
    failures = 0
    found = 0
    for number, cr in _coffee_servers(docs):
        found += 1
        try:
            objects = render_objects(cr)
        except SpecError as exc:
            failures += 1
            print(f"error: {name}: document {number} ({_describe(cr)}): {exc}", file=err)
            continue
        has_uid = bool((cr.get("metadata") or {}).get("uid"))
        for obj in objects:
            header = f"# Source: {_describe(cr)}\n"
            if not has_uid:
                header += (
                    "# ownerReferences omitted: the CoffeeServer has no metadata.uid until it "
                    "exists in the cluster;\n# the operator adds them (controller: true).\n"
                )
            chunks.append("---\n" + header + yaml.safe_dump(obj, sort_keys=False))
    if failures:
        return EXIT_INVALID
    if not found:
        print(f"error: {name}: no {KIND} ({GROUP}) documents found", file=err)
        return EXIT_INVALID
    out.write("".join(chunks))
    return 0


def _cmd_render(args: argparse.Namespace) -> int:
    if args.filename == "-":
        return render(sys.stdin, "<stdin>", sys.stdout, sys.stderr)
    try:
        with open(args.filename, encoding="utf-8") as fh:
            return render(fh, args.filename, sys.stdout, sys.stderr)
    except OSError as exc:
        print(f"error: cannot read {args.filename}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE


def _cmd_crd(args: argparse.Namespace) -> int:
    from .crd import crd_text

    sys.stdout.write(crd_text())
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from . import runner  # kopf and the API client are only needed here

    return runner.run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coffee-operator",
        description="Kubernetes operator for the Coffee Payments Server (CoffeeServer resources).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p_render = sub.add_parser(
        "render",
        help="print the objects the operator would apply for each CoffeeServer in FILE",
        description="Print, as multi-document YAML, exactly the objects the operator would "
        "apply for each CoffeeServer in FILE. Exit 1 naming the field if one is invalid.",
    )
    p_render.add_argument("-f", "--filename", required=True, metavar="FILE",
                          help="YAML/JSON file with CoffeeServer documents; '-' reads stdin")
    p_render.set_defaults(func=_cmd_render)

    p_crd = sub.add_parser("crd", help="print the CoffeeServer CustomResourceDefinition")
    p_crd.set_defaults(func=_cmd_crd)

    p_run = sub.add_parser(
        "run",
        help="run the operator (current kubeconfig or in-cluster config)",
        description="Run the operator under kopf against the current kubeconfig context, "
        "or the in-cluster service account when running in a pod.",
    )
    scope = p_run.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", action="append", default=[], metavar="NS",
                       help="watch this namespace (repeatable; kopf globs like 'shop-*' work)")
    scope.add_argument("-A", "--all-namespaces", action="store_true",
                       help="watch CoffeeServers in every namespace (the default with no -n)")
    peering = p_run.add_mutually_exclusive_group()
    peering.add_argument("--peering", metavar="NAME",
                         help="kopf peering object to coordinate with other operator replicas")
    peering.add_argument("--standalone", action="store_true",
                         help="do not use peering (a single operator instance)")
    p_run.add_argument("--priority", type=int, default=None,
                       help="peering priority (the highest-priority instance is active)")
    p_run.add_argument("--liveness", metavar="URL", default=None,
                       help="serve kopf's liveness probe, e.g. http://0.0.0.0:8080/healthz")
    p_run.add_argument("--watch-timeout", type=int, default=None, metavar="SECONDS",
                       help="server-side timeout of each watch request (kopf default: none)")
    p_run.add_argument("-v", "--verbose", action="store_true", help="log more")
    p_run.add_argument("--debug", action="store_true", help="log everything, incl. API calls")
    p_run.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    p_run.set_defaults(func=_cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover - `python -m coffee_operator.cli`
    sys.exit(main())

