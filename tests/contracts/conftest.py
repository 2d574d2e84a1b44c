"""Fixtures shared by contract tests: napari's viewer (skipped without napari, pytest-qt or a
display) and a tiny EM model with domain statistics (the guard's large and rescaled paths)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx_models
import pytest

from unet_edge import Segmenter, domain, io
from unet_edge.config import UNetConfig


@pytest.fixture
def viewer(request: pytest.FixtureRequest) -> Any:
    pytest.importorskip("napari", reason="the [napari] extra is not installed")
    if importlib.util.find_spec("pytestqt") is None:
        pytest.skip("pytest-qt is not installed (make test-napari installs it)")
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        pytest.skip(
            "no X display: napari's canvas needs OpenGL; run under xvfb-run (make test-napari)"
        )
    return request.getfixturevalue("make_napari_viewer")()


@pytest.fixture(scope="module")
def em(isbi: Path) -> list[np.ndarray]:
    """Three ISBI training slices (uint8, 512 x 512)."""
    return [io.read_image(isbi / "train" / "image" / f"{i:02d}.png") for i in range(3)]


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory, em: list[np.ndarray]) -> Path:
    """A tiny U-Net at 4 nm per pixel with the statistics of two EM slices."""
    folder = tmp_path_factory.mktemp("guarded")
    config = UNetConfig(base_width=2)
    with Segmenter(onnx_models.save(folder / "plain.onnx", config)) as seg:
        stats = domain.measure(seg, em[:2], source="ISBI slices 00-01")

    def edit(d: dict[str, Any]) -> None:
        d.update(domain=stats.to_dict(), name="tiny-em")
        d["pixel_size"] = {"y": 0.004, "x": 0.004, "unit": "µm"}

    return onnx_models.save_edited(folder / "guarded.onnx", config, edit)
