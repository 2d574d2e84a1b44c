"""Writing PNG and TIFF (unet_edge/io/write.py): provenance, calibration and hyperstack
axes where each format keeps them."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import tifffile

from unet_edge import io
from unet_edge.errors import OutputError
from unet_edge.imagemeta import Calibration


def test_tiff_provenance_round_trip(tmp_path: Path) -> None:
    p = io.write_tiff(tmp_path / "m.tif", np.zeros((3, 3), np.uint8), {"model_sha256": "ab"})
    assert io.read_provenance(p) == {"model_sha256": "ab"}


def test_png_provenance_round_trip_and_16_bit(tmp_path: Path) -> None:
    img = np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000
    p = io.write_png(tmp_path / "m.png", img, {"model_sha256": "ab", "tile": [188, 188]})
    assert io.read_provenance(p) == {"model_sha256": "ab", "tile": [188, 188]}
    back = io.read_image(p)
    assert back.dtype == np.uint16 and np.array_equal(back, img)
    assert io.read_provenance(io.write_png(tmp_path / "bare.png", img)) == {}


@pytest.mark.parametrize("ome", [False, True])
def test_hyperstack_keeps_axes_calibration_and_provenance(tmp_path: Path, ome: bool) -> None:
    cal = Calibration(0.25, 0.5, "µm", 2.0)
    data = np.random.default_rng(0).random((3, 2, 5, 6), dtype=np.float32)
    name = "p.ome.tif" if ome else "p.tif"
    p = io.write_tiff(tmp_path / name, data, {"classes": ["bg", "fg"]}, axes="ZCYX",
                      calibration=cal, ome=ome)  # fmt: skip
    assert io.read_calibration(p) == cal
    assert io.read_provenance(p) == {"classes": ["bg", "fg"]}
    with tifffile.TiffFile(p) as tf:
        assert tf.series[0].axes == "ZCYX" and tf.series[0].shape == data.shape
        assert (tf.is_ome, tf.is_imagej) == (ome, not ome)
        assert np.array_equal(tf.asarray(), data)


@pytest.mark.parametrize(
    ("data", "axes"),
    [
        (np.zeros((2, 5, 6), np.uint8), "YX"),  # one dimension too many
        (np.zeros((5, 6), np.int32), "YX"),  # ImageJ holds uint8, uint16, float32
        (np.zeros((5, 6), np.float64), "YX"),
    ],
)
def test_what_a_hyperstack_cannot_hold_is_refused(
    tmp_path: Path, data: np.ndarray, axes: str
) -> None:
    said = f"of shape {data.shape} and dtype {data.dtype} as axes 'YX'; expected 2 dimensions"
    with pytest.raises(OutputError, match=re.escape(said)):
        io.write_tiff(tmp_path / "x.tif", data, axes=axes)
    assert list(tmp_path.iterdir()) == []  # refused before a temporary file was made


def test_a_plain_tiff_of_pages(tmp_path: Path) -> None:
    stack = np.random.default_rng(2).integers(0, 65535, (3, 4, 5), dtype=np.uint16)
    p = io.write_tiff(tmp_path / "s.tif", stack)
    with tifffile.TiffFile(p) as tf:
        assert len(tf.pages) == 3 and not tf.is_imagej  # pages, not an RGB image
    assert np.array_equal(io.read_image(p), stack) and io.read_provenance(p) == {}
