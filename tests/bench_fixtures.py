"""A tiny benchmark data folder (image/ and label/) cut from the packaged sample, and the
scripts of benchmarks/ loaded as modules."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np

from unet_edge import bench, io


def make_tiny_data(folder: Path) -> Path:
    """Three crops of the packaged sample in image/, thresholded as labels in label/."""
    (folder / "image").mkdir()
    (folder / "label").mkdir()
    sample = io.read_image(bench.sample_path())
    for k, (y, x) in enumerate([(0, 0), (100, 200), (300, 50)]):
        crop = sample[y : y + 160, x : x + 176]
        io.write_png(folder / "image" / f"s{k}.png", crop)
        io.write_png(folder / "label" / f"s{k}.png", np.where(crop > crop.mean(), 255, 0))
    return folder


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """The script benchmarks/NAME.py as a module (benchmarks/ is not a package); the scripts
    it imports by name (beside it) are found."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS))
