"""README promises checked against the code they describe, so the docs cannot drift:
the generated field reference is current, every environment variable the app reads is in
the env table (with the app's real GUNICORN_* defaults), every condition reason the operator
sets has a troubleshooting row, and the commands and paths it names exist."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

from tests.deploy_support import REPO, VENV_BIN

README = REPO / "README.md"
APP = REPO / "app"
ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*")
# Calls that read one variable: os.environ.get("X"), env.str("X"), os.getenv("X"), ...
_READERS = {
    "get", "setdefault", "pop", "getenv", "str", "bool", "int", "float", "list", "tuple",
    "dict", "json", "url", "db", "db_url", "cache", "cache_url", "email", "email_url", "path",
}
_ENV_OBJECTS = {"env", "environ", "environment"}
_SHELL_IGNORED = {"PATH", "HOME", "PWD", "IFS", "HOSTNAME", "USER"}


def _is_env_object(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return node.id in _ENV_OBJECTS or node.id == "os"
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def _names_in_python(source: str) -> set[str]:
    tree = ast.parse(source)
    found: set[str] = set()
    dynamic = False
    for node in ast.walk(tree):
        key: ast.expr | None = None
        if isinstance(node, ast.Subscript) and _is_env_object(node.value):
            key = node.slice  # os.environ["X"]
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            if (
                isinstance(func, ast.Attribute)
                and func.attr in _READERS
                and _is_env_object(func.value)
            ):
                key = node.args[0]  # os.environ.get("X"), env.str("X"), os.getenv("X")
            elif any(_is_env_object(arg) for arg in node.args):
                # A helper handed the environment and a name: _url(env, "PAYMENT_PROVIDER_URL")
                found |= {
                    arg.value
                    for arg in node.args
                    if isinstance(arg, ast.Constant)
                    and isinstance(arg.value, str)
                    and ENV_NAME.fullmatch(arg.value)
                    and "_" in arg.value
                }
        if key is None:
            continue
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            if ENV_NAME.fullmatch(key.value):
                found.add(key.value)
        else:
            dynamic = True
    if dynamic:
        # Names read in a loop (os.environ.get(name) for name in VARS): take the names from
        # the module-level tables such loops run over.
        for stmt in tree.body:
            if isinstance(stmt, ast.Assign | ast.AnnAssign) and stmt.value is not None:
                for node in ast.walk(stmt.value):
                    if (
                        isinstance(node, ast.Constant)
                        and isinstance(node.value, str)
                        and ENV_NAME.fullmatch(node.value)
                        and "_" in node.value
                    ):
                        found.add(node.value)
    return found


def _names_in_shell(text: str) -> set[str]:
    """Variables a shell script takes from its environment: used but never assigned,
    or assigned only as a default of themselves (PYTHON=${PYTHON:-python})."""
    referenced = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", text))
    assigned = set(re.findall(r"^\s*([A-Z][A-Z0-9_]*)=", text, re.M))
    self_defaulted = {
        name
        for name in assigned
        if re.search(rf"^\s*{name}=\$\{{{name}:?-", text, re.M)
    }
    return (referenced - assigned | self_defaulted) - _SHELL_IGNORED


def env_vars_read_by_app() -> set[str]:
    """Every environment variable name app/ reads, found in its code rather than listed."""
    names: set[str] = set()
    for path in APP.rglob("*.py"):
        if "migrations" in path.parts or any(p.endswith(".egg-info") for p in path.parts):
            continue
        names |= _names_in_python(path.read_text(encoding="utf-8"))
    for path in APP.rglob("*.sh"):
        names |= _names_in_shell(path.read_text(encoding="utf-8"))
    return names


def section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"README.md has no '## {title}' section"
    return match.group(1)


def table_rows(text: str) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not re.match(r"^\|\s*-{3}", line):
            rows.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
    return rows[1:]  # without the header


def env_table() -> dict[str, list[str]]:
    """README env table: variable name -> its row (a row may name several variables)."""
    out: dict[str, list[str]] = {}
    for row in table_rows(section("The app's environment variables")):
        for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", row[0]):
            out[name] = row
    return out


def test_field_reference_is_generated_from_the_current_crd() -> None:
    result = subprocess.run(
        [str(VENV_BIN / "python"), "-m", "coffee_operator.docs", "--check", "--readme", README],
        capture_output=True, text=True, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    body = section("CoffeeServer reference")
    assert "<!-- fields:start -->" in body and "<!-- fields:end -->" in body
    assert "`spec.gunicorn.workers`" in body


def test_extractor_finds_the_contract_variables() -> None:
    """The scan must see the spec's variables, or the completeness test below proves nothing."""
    contract = {
        "GUNICORN_WORKERS", "GUNICORN_PORT", "GUNICORN_TIMEOUT", "GUNICORN_GRACEFUL_TIMEOUT",
        "GUNICORN_MAX_REQUESTS", "GUNICORN_MAX_REQUESTS_JITTER", "RUN_MODE", "DJANGO_SECRET_KEY",
        "DJANGO_ALLOWED_HOSTS", "DJANGO_DEBUG", "DATABASE_URL", "LOG_LEVEL",
        "PAYMENT_PROVIDER_URL", "PAYMENT_PROVIDER_TIMEOUT",
    }
    assert contract <= env_vars_read_by_app()


def test_every_env_var_the_app_reads_is_documented() -> None:
    missing = sorted(env_vars_read_by_app() - set(env_table()))
    assert not missing, f"read by app/ but not in README's env-var table: {missing}"


def test_documented_env_vars_exist() -> None:
    stale = sorted(set(env_table()) - env_vars_read_by_app())
    assert not stale, f"in README's env-var table but not read by app/: {stale}"


def test_gunicorn_defaults_match_the_app() -> None:
    from coffee_payment.runtime_env import GUNICORN_VARS

    table = env_table()
    for var in GUNICORN_VARS:
        default_cell = table[var.name][1]
        if var.name == "GUNICORN_GRACEFUL_TIMEOUT":
            assert "GUNICORN_TIMEOUT" in default_cell
        else:
            assert default_cell == f"`{var.default}`", (var.name, default_cell)


def test_every_condition_reason_has_a_troubleshooting_row() -> None:
    from coffee_operator.conditions import REASONS

    documented = {row[0].strip("`") for row in table_rows(section("Troubleshooting"))}
    missing = sorted(set(REASONS) - documented)
    assert not missing, f"condition reasons without a README troubleshooting row: {missing}"


def test_the_two_commands_come_first_and_exist() -> None:
    text = README.read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert headings[0] == "The two commands"
    first = section("The two commands")
    assert "make demo" in first and "make test" in first
    targets = set(re.findall(r"^([a-z][\w-]*):", (REPO / "Makefile").read_text(), re.M))
    for command in re.findall(r"^make ([\w-]+)", text, re.M):
        assert command in targets, f"README runs `make {command}`, the Makefile has no such target"


@pytest.mark.parametrize(
    "path",
    sorted(set(re.findall(r"\]\(((?!https?:|#)[^)#]+)", README.read_text(encoding="utf-8")))),
)
def test_linked_files_exist(path: str) -> None:
    assert (REPO / path).exists(), f"README links {path}, which does not exist"


def test_run_flags_in_readme_exist() -> None:
    help_text = subprocess.run(
        [str(VENV_BIN / "coffee-operator"), "run", "--help"],
        capture_output=True, text=True, check=True,
    ).stdout
    usage = section("Operator command line")
    for flag in set(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", usage.split("```")[1])):
        if flag in {"-f", "-"}:
            continue  # render's flags, checked by the operator's own CLI tests
        assert flag in help_text, f"README documents `run {flag}`; `run --help` lacks it"


def test_quickstart_uses_real_names() -> None:
    """The quickstart's object names match the example and the install."""
    quick = section("Quickstart on a real cluster")
    example = (REPO / "deploy/examples/minimal.yaml").read_text()
    name = re.search(r"^  name: (\S+)", example, re.M)
    assert name and f"coffeeserver/{name.group(1)}" in quick
    assert "kubectl apply -k deploy/" in quick
    assert "kubectl -n shop wait --for=condition=Ready" in quick
    assert "deployment/coffee-operator" in quick and Path(REPO / "deploy").is_dir()
