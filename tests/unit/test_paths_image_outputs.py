"""The mask, probabilities and overlay of one image with its axes
(unet_edge/paths/image_outputs.py), read back with tifffile."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from unet_edge import io
from unet_edge.imagemeta import Calibration
from unet_edge.io import axes
from unet_edge.paths.image_outputs import image_writers
from unet_edge.prediction import Prediction


def _series(tmp_path: Path, shape: tuple[int, ...], meta_axes: str) -> axes.Arranged:
    data = (np.arange(int(np.prod(shape))) % 251).astype(np.uint8).reshape(shape)
    path = tmp_path / "in.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": meta_axes})
    return axes.arrange(data, axes.layout(io.image_header(path), 1))


def _prediction(arranged: axes.Arranged) -> Prediction:
    """Two classes: class 1 where the pixel is above 125, so every frame's mask differs."""
    bright = (arranged.frames > 125).astype(np.float32)
    return Prediction(np.stack([1 - bright, bright], axis=1 if arranged.layout.is_stack else 0), ())


def test_a_t_by_z_series_keeps_its_axes_and_class_names(tmp_path: Path) -> None:
    arranged = _series(tmp_path, (2, 3, 10, 12), "TZYX")
    pred = _prediction(arranged)
    prov = {"source": "in.tif"}
    cal = Calibration(0.5, 0.5, "µm", 2.0)
    writers = image_writers(arranged, pred, ("membrane", "cell"), prov, cal)
    for kind in ("mask", "probabilities", "overlay"):
        writers[kind](tmp_path / f"out_{kind}.tif")
    with tifffile.TiffFile(tmp_path / "out_mask.tif") as tf:
        assert tf.series[0].axes == "TZYX" and tf.series[0].shape == (2, 3, 10, 12)
        mask = tf.asarray()
    assert np.array_equal(mask[1, 2] > 0, arranged.frames[5] > 125)
    with tifffile.TiffFile(tmp_path / "out_probabilities.tif") as tf:
        assert tf.series[0].axes == "TZCYX"
        assert tf.imagej_metadata["Labels"] == ["membrane", "cell"] * 6
    with tifffile.TiffFile(tmp_path / "out_overlay.tif") as tf:
        assert tf.series[0].axes == "TZYXS" and tf.series[0].shape == (2, 3, 10, 12, 3)
        overlay = tf.asarray()
    assert not np.array_equal(overlay[0, 0], overlay[1, 2])  # every slice, not the first
    assert io.read_provenance(tmp_path / "out_overlay.tif") == prov


def test_ome_probabilities_name_their_channels(tmp_path: Path) -> None:
    arranged = _series(tmp_path, (3, 10, 12), "TYX")
    writers = image_writers(arranged, _prediction(arranged), ("bg", "fg"), {}, None, ome=True)
    writers["probabilities"](tmp_path / "p.ome.tif")
    with tifffile.TiffFile(tmp_path / "p.ome.tif") as tf:
        assert tf.series[0].axes == "TCYX"
        assert 'Name="bg"' in tf.ome_metadata and 'Name="fg"' in tf.ome_metadata


def test_one_image_writes_a_png_mask_and_overlay(tmp_path: Path) -> None:
    path = tmp_path / "in.png"
    io.write_png(path, np.arange(120, dtype=np.uint8).reshape(10, 12))
    arranged = axes.arrange(io.read_image(path), axes.layout(io.image_header(path), 1))
    writers = image_writers(arranged, _prediction(arranged), ("a", "b"), {}, None)
    writers["mask"](tmp_path / "m.png")
    writers["overlay"](tmp_path / "o.png")
    assert io.read_image(tmp_path / "m.png").shape == (10, 12)
    assert io.read_image(tmp_path / "o.png").shape == (10, 12, 3)
