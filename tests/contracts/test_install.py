"""The runtime-only install (`pip install .`, no extras) that `make test-runtime` tests.

These checks run only in that run (it sets ``UNET_EDGE_RUNTIME_ONLY=1``): they
make sure the suite there imports the installed package, not the source
tree, and that no optional dependency slipped in.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(
    os.environ.get("UNET_EDGE_RUNTIME_ONLY") != "1",
    reason="checks the runtime-only install; run by `make test-runtime`",
)


def _site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"]).resolve()


def test_the_installed_package_is_tested_not_the_source_tree() -> None:
    import unet_edge

    where = Path(unet_edge.__file__).resolve()
    assert _site_packages() in where.parents, where
    assert REPO / "unet_edge" not in where.parents
    # ... and so do the subprocesses some tests start (``python -c`` puts the cwd first
    # on sys.path unless PYTHONSAFEPATH is set).
    out = subprocess.run(
        [sys.executable, "-c", "import unet_edge; print(unet_edge.__file__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert _site_packages() in Path(out.stdout.strip()).resolve().parents, out.stdout


@pytest.mark.parametrize("module", ["torch", "skimage", "scipy", "dask", "zarr"])
def test_no_optional_dependency_is_installed(module: str) -> None:
    assert importlib.util.find_spec(module) is None, f"{module} is installed"


def test_shipped_model_cli_and_typing_marker_are_installed() -> None:
    import unet_edge

    pkg = Path(unet_edge.__file__).parent
    assert (pkg / "py.typed").is_file() and (pkg / "data" / "default.onnx").is_file()
    with unet_edge.Segmenter() as seg:  # the shipped model
        mask = seg.segment(np.zeros((40, 50), np.uint8))
    assert mask.shape == (40, 50)
    exe = Path(sys.executable).parent / "unet-edge"
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True)
    assert "unet-edge" in out.stdout
