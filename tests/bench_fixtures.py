"""A tiny benchmark data folder (image/ and label/) cut from the packaged sample."""

from __future__ import annotations

from pathlib import Path

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
