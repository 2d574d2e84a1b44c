"""ARCHITECTURE.md matches the code: its module table and diagram are generated and checked."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The house style keeps every function short (def line to last line, docstring included).
MAX_FUNCTION_LINES = 60


def test_architecture_doc_is_current_and_rules_hold() -> None:
    script = ROOT / "docs" / "architecture.py"
    if not script.is_file():  # an installed-package test run has no docs/
        import pytest

        pytest.skip("docs/architecture.py is not here (tests run outside the source tree)")
    proc = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr


def test_readme_links_the_architecture() -> None:
    readme = ROOT / "README.md"
    if readme.is_file():
        assert "ARCHITECTURE.md" in readme.read_text()


def test_functions_are_short() -> None:
    package = ROOT / "unet_edge"
    if not (ROOT / "pyproject.toml").is_file():  # the installed package: checked in the tree
        import pytest

        pytest.skip("not the source tree (tests run against the installed package)")
    long = [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.name} "
        f"({node.end_lineno - node.lineno + 1} lines)"
        for path in sorted(package.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and (node.end_lineno or node.lineno) - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"
