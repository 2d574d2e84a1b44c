"""A time series' frame interval without a pixel size: read on its own
(:func:`unet_edge.imagemeta.interval_of`) and written into every output with a T axis
(ImageJ ``finterval``/``tunit``, OME ``TimeIncrement``), read back with tifffile and with
the repository's own reader (issue 20's leftovers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from ome_helpers import ome_pixels

from unet_edge import Segmenter, io, segment_file
from unet_edge.imagemeta import Calibration, Interval, interval_of, tiff_kwargs

FRAMES = np.random.default_rng(21).integers(0, 255, (3, 40, 48), dtype=np.uint8)


@pytest.fixture(scope="module")
def tiny(tiny_onnx: Path):
    with Segmenter(tiny_onnx) as seg:
        yield seg


def _imagej(path: Path, finterval: object, tunit: object = None, axes: str = "TYX") -> Path:
    meta = {"axes": axes, "finterval": finterval, **({"tunit": tunit} if tunit else {})}
    tifffile.imwrite(path, FRAMES, imagej=True, metadata=meta)  # no resolution: pixels
    return path


def _ome(path: Path, increment: float, unit: str) -> Path:
    meta = {"axes": "TYX", "TimeIncrement": increment, "TimeIncrementUnit": unit}
    tifffile.imwrite(path, FRAMES, ome=True, metadata=meta)  # no PhysicalSize
    return path


def _interval(path: Path) -> Interval | None:
    with tifffile.TiffFile(path) as tf:
        return interval_of(tf)


def test_an_imagej_interval_without_a_pixel_size_reaches_every_tiff_output(
    tiny: Segmenter, tmp_path: Path
) -> None:
    src = _imagej(tmp_path / "movie.tif", 2.5, "min")
    assert io.read_calibration(src) is None and _interval(src) == Interval(2.5, "min")
    r = segment_file(tiny, src, tmp_path / "out", probabilities=True, overlay=True)
    assert "calibration_note" not in r.provenance  # nothing was dropped
    for name, axes in [("mask", "TYX"), ("probabilities", "TCYX"), ("overlay", "TYXS")]:
        out = tmp_path / "out" / f"movie_{name}.tif"
        with tifffile.TiffFile(out) as tf:
            assert tf.series[0].axes == axes
            ij = tf.imagej_metadata or {}
            assert (ij["finterval"], ij["tunit"], ij["frames"]) == (2.5, "min", 3), name
            assert "unit" not in ij  # no pixel size is made up
        assert io.read_calibration(out) is None and _interval(out) == Interval(2.5, "min")


def test_an_ome_interval_without_a_pixel_size_reaches_ome_and_imagej_outputs(
    tiny: Segmenter, tmp_path: Path
) -> None:
    src = _ome(tmp_path / "movie.tif", 100.0, "ms")
    assert io.read_calibration(src) is None and _interval(src) == Interval(100.0, "ms")
    segment_file(tiny, src, tmp_path / "ome", probabilities=True, output_format="ome-tiff")
    for name in ("mask", "probabilities"):
        out = tmp_path / "ome" / f"movie_{name}.ome.tif"
        pixels = ome_pixels(out)
        assert (float(pixels["TimeIncrement"]), pixels["TimeIncrementUnit"]) == (100.0, "ms")
        assert pixels["SizeT"] == "3" and "PhysicalSizeX" not in pixels
        assert _interval(out) == Interval(100.0, "ms")
    segment_file(tiny, src, tmp_path / "ij")  # OME in, ImageJ out: ImageJ's own keys
    with tifffile.TiffFile(tmp_path / "ij" / "movie_mask.tif") as tf:
        ij = tf.imagej_metadata or {}
        assert (ij["finterval"], ij["tunit"]) == (100.0, "ms")


def test_a_stated_pixel_size_keeps_an_interval_the_file_has_without_one(
    guarded: Path, tmp_path: Path
) -> None:
    src = _imagej(tmp_path / "movie.tif", 0.5)  # ImageJ's default unit: seconds
    with Segmenter(guarded) as at_4nm:  # a model that knows its pixel size
        segment_file(at_4nm, src, tmp_path / "out", pixel_size="native")
        segment_file(at_4nm, src, tmp_path / "px", pixel_size=0.008)
    for folder, cal in (("out", None), ("px", Calibration(0.008, 0.008, "µm", t=0.5))):
        out = tmp_path / folder / "movie_mask.tif"
        with tifffile.TiffFile(out) as tf:
            assert (tf.imagej_metadata or {})["tunit"] == "sec"
        assert io.read_calibration(out) == cal, folder
        assert _interval(out) == Interval(0.5, "s")


def test_no_t_axis_no_interval_and_bad_intervals_are_dropped(tmp_path: Path) -> None:
    z = _imagej(tmp_path / "z.tif", 2.0, "s", axes="ZYX")
    assert "finterval" not in tiff_kwargs("ZYX", None, {}, False, _interval(z))["metadata"]
    assert "TimeIncrement" not in tiff_kwargs("YX", None, {}, True, Interval(2.0))["metadata"]
    assert _interval(_imagej(tmp_path / "zero.tif", 0.0)) is None  # ImageJ's "none"
    assert _interval(_imagej(tmp_path / "bad.tif", 2.0, "fortnight")) is None
    # an API caller's interval is checked as an input's: one that is not is left out
    assert "finterval" not in tiff_kwargs("TYX", None, {}, False, Interval(-1.0))["metadata"]
    meta = tiff_kwargs("TYX", None, {}, False, Interval(20.0, "µs"))["metadata"]
    assert (meta["finterval"], meta["tunit"]) == (20.0, "us")
    # the calibration's own interval wins over one given beside it
    cal = Calibration(0.5, 0.5, t=3.0, t_unit="min")
    assert tiff_kwargs("TYX", cal, {}, False, Interval(1.0))["metadata"]["finterval"] == 3.0


def test_write_tiff_writes_an_interval_alone(tmp_path: Path) -> None:
    out = io.write_tiff(tmp_path / "t.tif", FRAMES, {}, axes="TYX", interval=Interval(4.0, "h"))
    assert io.read_calibration(out) is None and _interval(out) == Interval(4.0, "h")
    ome = io.write_tiff(
        tmp_path / "t.ome.tif", FRAMES, {}, axes="TYX", ome=True, interval=Interval(4.0, "h")
    )
    assert ome_pixels(ome)["TimeIncrementUnit"] == "h" and _interval(ome) == Interval(4.0, "h")
    with io.open_image(out) as opened:
        assert opened.interval() == Interval(4.0, "h")
    assert io.read_file(out).interval == Interval(4.0, "h")
