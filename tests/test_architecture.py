"""ARCHITECTURE.md matches the code: its module table and diagram are generated and checked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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
