"""`coffee-operator render|crd|run --help`, in process and through the real console script."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from coffee_operator import cli
from coffee_operator.manifests import render_objects

from .helpers import COFFEE_OPERATOR, CRD_PATH, FULL_SPEC, make_cr


def dump(*docs: Any) -> str:
    return yaml.safe_dump_all(list(docs), sort_keys=False)


def run_render(text: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.render(io.StringIO(text), "<test>", out, err)
    return code, out.getvalue(), err.getvalue()


def test_render_prints_exactly_render_objects() -> None:
    crs = [make_cr(FULL_SPEC), make_cr({"image": "x:1"}, name="kiosk")]
    code, out, err = run_render(dump(*crs))
    assert (code, err) == (0, "")
    docs = [d for d in yaml.safe_load_all(out) if d]
    assert docs == render_objects(crs[0]) + render_objects(crs[1])


def test_render_without_uid_explains_missing_owner_references() -> None:
    code, out, _ = run_render(dump(make_cr(uid=None)))
    assert code == 0
    assert "# ownerReferences omitted" in out
    assert all("ownerReferences" not in d["metadata"] for d in yaml.safe_load_all(out) if d)


def test_render_skips_other_kinds_and_expands_lists() -> None:
    other = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    listed = {"apiVersion": "v1", "kind": "List", "items": [make_cr(name="a"), make_cr(name="b")]}
    code, out, _ = run_render(dump(other, listed))
    assert code == 0
    names = [(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(out) if d]
    assert names == [("Deployment", "a"), ("Service", "a"), ("Deployment", "b"), ("Service", "b")]


def test_render_is_all_or_nothing_and_names_every_bad_field() -> None:
    good = make_cr(name="good")
    bad1 = make_cr({"image": "x", "gunicorn": {"workers": 0}}, name="bad1")
    bad2 = make_cr({"image": "x", "resources": {"limits": {"cpu": "1e3m"}}}, name="bad2")
    code, out, err = run_render(dump(good, bad1, bad2))
    assert (code, out) == (1, "")
    assert "document 2 (CoffeeServer cafe/bad1): spec.gunicorn.workers: must be >= 1" in err
    assert "document 3 (CoffeeServer cafe/bad2): spec.resources.limits.cpu" in err


@pytest.mark.parametrize(
    ("text", "code", "words"),
    [("a: [1", 2, "not valid YAML"), ("", 1, "no CoffeeServer"),
     (dump({"apiVersion": "v1", "kind": "Pod"}), 1, "no CoffeeServer")],
)
def test_render_refuses_unusable_input(text: str, code: int, words: str) -> None:
    got, out, err = run_render(text)
    assert (got, out) == (code, "")
    assert words in err


def test_missing_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["render", "-f", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_render_reads_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "shop.yaml"
    path.write_text(dump(make_cr(FULL_SPEC)))
    assert cli.main(["render", "-f", str(path)]) == 0
    docs = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]
    assert docs == render_objects(make_cr(FULL_SPEC))


def test_crd_subcommand_prints_the_crd(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["crd"]) == 0
    assert capsys.readouterr().out == CRD_PATH.read_text()


def test_run_options_parse() -> None:
    args = cli.build_parser().parse_args(
        ["run", "-n", "shop-a", "--namespace", "shop-b", "--standalone", "--verbose",
         "--liveness", "http://0.0.0.0:8080/healthz"]
    )
    assert args.namespace == ["shop-a", "shop-b"] and args.standalone and args.verbose
    assert args.liveness == "http://0.0.0.0:8080/healthz" and not args.all_namespaces
    args = cli.build_parser().parse_args(["run", "-A", "--peering", "coffee"])
    assert args.all_namespaces and args.peering == "coffee" and args.namespace == []
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["run", "-A", "-n", "x"])
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["run", "--standalone", "--peering", "p"])


# -- the real console script -----------------------------------------------------------------


def script(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    assert COFFEE_OPERATOR.exists(), f"{COFFEE_OPERATOR} missing: run make setup"
    return subprocess.run([str(COFFEE_OPERATOR), *args], input=stdin, capture_output=True,
                          text=True, timeout=60)


def test_console_script_renders_stdin() -> None:
    result = script("render", "-f", "-", stdin=dump(make_cr(FULL_SPEC, uid=None)))
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert docs == render_objects(make_cr(FULL_SPEC, uid=None))


def test_console_script_exits_non_zero_naming_the_field() -> None:
    bad = make_cr({"image": "x", "terminationGracePeriodSeconds": 30})
    result = script("render", "-f", "-", stdin=dump(bad))
    assert result.returncode == 1
    assert result.stdout == ""
    assert "spec.terminationGracePeriodSeconds" in result.stderr
    assert "minimum is 36" in result.stderr


def test_console_script_help_lists_the_verbs() -> None:
    result = script("--help")
    assert result.returncode == 0
    assert "render" in result.stdout and "run" in result.stdout
