"""The house's shape holds: ARCHITECTURE.md is generated from the code, and
docs/architecture.py --check fails on an import cycle, a module over 500 lines
and runtime code importing training (each shown failing on a small package)."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docs" / "architecture.py"
#: The house style keeps every function short (def line to last line, docstring included).
MAX_FUNCTION_LINES = 60

pytestmark = pytest.mark.skipif(
    not SCRIPT.is_file(), reason="docs/architecture.py is not here (tests run outside the tree)"
)


@pytest.fixture(scope="module")
def arch() -> ModuleType:
    spec = importlib.util.spec_from_file_location("architecture", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["architecture"] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def _package(root: Path, files: dict[str, str]) -> Path:
    pkg = root / "unet_edge"
    for name, text in {"__init__.py": "", **files}.items():
        path = pkg / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return pkg


def test_architecture_doc_is_current_and_rules_hold() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr


def test_a_cycle_through_a_lazy_import_fails(arch: ModuleType, tmp_path: Path) -> None:
    pkg = _package(
        tmp_path,
        {
            "errors.py": "def f():\n    from .config import X\n",
            "config.py": "from .errors import f\nX = 1\n",
        },
    )
    assert "import cycle: config -> errors -> config" in arch.check(pkg)


def test_a_cycle_inside_a_wing_fails(arch: ModuleType, tmp_path: Path) -> None:
    pkg = _package(
        tmp_path,
        {
            "io/__init__.py": "from .read import r\n",
            "io/read.py": "from .. import io\nr = 1\n",
        },
    )
    assert "import cycle: io -> io.read -> io" in arch.check(pkg)


def test_type_checking_imports_are_no_cycle(arch: ModuleType, tmp_path: Path) -> None:
    pkg = _package(
        tmp_path,
        {
            "errors.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from .config import X\n",
            "config.py": "from .errors import TYPE_CHECKING\nX = 1\n",
        },
    )
    assert not [p for p in arch.check(pkg) if "cycle" in p]


def test_a_module_over_500_lines_fails(arch: ModuleType, tmp_path: Path) -> None:
    pkg = _package(tmp_path, {"errors.py": "x = 1\n" * 501, "config.py": "y = 1\n" * 500})
    found = arch.check(pkg)
    assert any(p.startswith("unet_edge/errors.py has 501 lines") for p in found), found
    assert not any("config.py has" in p for p in found)


def test_runtime_code_importing_training_fails(arch: ModuleType, tmp_path: Path) -> None:
    pkg = _package(
        tmp_path,
        {
            "training/__init__.py": "",
            "training/loop.py": "import torch\n",
            "runtime.py": "def f():\n    from .training import loop\n",
            "bench/__init__.py": "",
            "bench/data.py": "from unet_edge.training.loop import torch\n",
            "bench/backends.py": "def f():\n    from ..training import loop\n    import torch\n",
        },
    )
    found = arch.check(pkg)
    assert any(p.startswith("runtime imports training.loop: only") for p in found), found
    assert any(p.startswith("bench.data imports training.loop: only") for p in found), found
    assert not any(p.startswith(("bench.backends", "training")) for p in found), found


def test_the_real_package_breaks_no_rule(arch: ModuleType) -> None:
    assert arch.check() == []


def test_readme_links_the_architecture() -> None:
    assert "ARCHITECTURE.md" in (ROOT / "README.md").read_text()


def test_functions_are_short() -> None:
    long = [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.name} "
        f"({node.end_lineno - node.lineno + 1} lines)"
        for path in sorted((ROOT / "unet_edge").rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and (node.end_lineno or node.lineno) - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def _unit_names() -> set[str]:
    return {p.stem.removeprefix("test_") for p in (ROOT / "tests" / "unit").glob("test_*.py")}


def test_every_unit_test_file_names_a_module(arch: ModuleType) -> None:
    """tests/unit/test_<wing>_<module>.py tests unet_edge/<wing>/<module>.py (or a wing's or a
    single module's public face: test_io.py, test_runtime.py)."""
    modules = {name.replace(".", "_") for name in arch.scan() if name}
    assert sorted(_unit_names() - modules) == []


#: Modules whose tests still live in their wing's test file (or only in tests/contracts/);
#: a ratchet: a new module needs a test file, and one that gets its own leaves this list.
WITHOUT_OWN_TEST_FILE = {
    # tested through tests/contracts/test_bioimage.py (reading and writing packages need
    # bioimageio.spec, and the package reader is being split into models/package_*.py)
    "models_bioimage", "training_package",
}  # fmt: skip


def test_modules_without_their_own_test_file_are_known(arch: ModuleType) -> None:
    modules = {n.replace(".", "_") for n in arch.scan() if n and not n.endswith("__main__")}
    assert sorted(modules - _unit_names()) == sorted(WITHOUT_OWN_TEST_FILE)
