"""`python -m coffee_operator.docs`: print, --write between the markers, --check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from coffee_operator import docs

from .helpers import REPO


def test_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert docs.main([]) == 0
    out = capsys.readouterr().out
    assert out == docs.markdown()
    assert out.startswith("| Field | Type | Default | Bounds / values | Description |")
    assert "| `spec.gunicorn.timeout` | integer | `30` | 1..3600 |" in out


def test_write_replaces_only_the_marked_block(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nintro\n\n{docs.START}\nold table\n{docs.END}\n\n## After\n")
    assert docs.main(["--write", "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("# Title\n\nintro\n\n" + docs.START + "\n")
    assert text.endswith(docs.END + "\n\n## After\n")
    assert "old table" not in text and docs.markdown() in text
    assert docs.main(["--check", "--readme", str(readme)]) == 0
    readme.write_text(text.replace("1..3600", "1..9999"))
    assert docs.main(["--check", "--readme", str(readme)]) == 1


def test_write_refuses_a_readme_without_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    assert docs.main(["--write", "--readme", str(readme)]) == 1
    assert readme.read_text() == "# no markers\n"


def test_module_entry_point_checks_the_repo_readme() -> None:
    result = subprocess.run([sys.executable, "-m", "coffee_operator.docs", "--check"],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
