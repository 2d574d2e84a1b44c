"""The time interval of a time series, from input to outputs: ImageJ ``finterval``/``tunit``
and OME ``TimeIncrement``/``TimeIncrementUnit`` are read into the calibration
(:class:`unet_edge.imagemeta.Calibration` ``t``, ``t_unit``) and written into the mask,
probabilities and overlay TIFFs that keep the T axis; read back with tifffile and with
the repository's own reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from ome_helpers import ome_pixels

from unet_edge import Segmenter, io, scale, segment_file
from unet_edge.imagemeta import Calibration, calibration_and_note, tiff_kwargs

FRAMES = np.random.default_rng(20).integers(0, 255, (3, 40, 48), dtype=np.uint8)


def _imagej_series(path: Path, finterval: object, tunit: object = None) -> Path:
    meta = {"axes": "TYX", "unit": "um", "finterval": finterval}
    if tunit is not None:
        meta["tunit"] = tunit
    tifffile.imwrite(path, FRAMES, imagej=True, resolution=(2.0, 2.0), metadata=meta)
    return path


def _ome_series(path: Path, increment: float, unit: str) -> Path:
    meta = {"axes": "TYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5}
    meta |= {"TimeIncrement": increment, "TimeIncrementUnit": unit}
    tifffile.imwrite(path, FRAMES, ome=True, metadata=meta)
    return path


def _note(path: Path) -> tuple[Calibration | None, str | None]:
    with tifffile.TiffFile(path) as tf:
        return calibration_and_note(tf)


@pytest.fixture(scope="module")
def tiny(tiny_onnx: Path):
    with Segmenter(tiny_onnx) as seg:
        yield seg


def test_imagej_finterval_reaches_every_tiff_output(tiny: Segmenter, tmp_path: Path) -> None:
    src = _imagej_series(tmp_path / "movie.tif", 2.5, "min")
    assert io.read_calibration(src) == Calibration(0.5, 0.5, "µm", t=2.5, t_unit="min")
    segment_file(tiny, src, tmp_path / "out", probabilities=True, overlay=True)
    for name, axes in [("mask", "TYX"), ("probabilities", "TCYX"), ("overlay", "TYXS")]:
        out = tmp_path / "out" / f"movie_{name}.tif"
        with tifffile.TiffFile(out) as tf:
            assert tf.series[0].axes == axes
            ij = tf.imagej_metadata or {}
            assert (ij["finterval"], ij["tunit"], ij["frames"]) == (2.5, "min", 3), name
        cal = io.read_calibration(out)
        assert cal is not None and (cal.t, cal.t_unit, cal.x) == (2.5, "min", 0.5)


def test_ome_time_increment_reaches_ome_and_imagej_outputs(tiny: Segmenter, tmp_path: Path) -> None:
    src = _ome_series(tmp_path / "movie.tif", 100.0, "ms")
    assert io.read_calibration(src) == Calibration(0.5, 0.5, "µm", t=100.0, t_unit="ms")
    segment_file(tiny, src, tmp_path / "ome", probabilities=True, output_format="ome-tiff")
    for name in ("mask", "probabilities"):
        out = tmp_path / "ome" / f"movie_{name}.ome.tif"
        pixels = ome_pixels(out)
        assert (float(pixels["TimeIncrement"]), pixels["TimeIncrementUnit"]) == (100.0, "ms")
        assert pixels["SizeT"] == "3"
        cal = io.read_calibration(out)
        assert cal is not None and (cal.t, cal.t_unit) == (100.0, "ms")
    segment_file(tiny, src, tmp_path / "ij")  # OME in, ImageJ out: ImageJ's own keys
    with tifffile.TiffFile(tmp_path / "ij" / "movie_mask.tif") as tf:
        ij = tf.imagej_metadata or {}
        assert (ij["finterval"], ij["tunit"]) == (100.0, "ms")


def test_imagejs_default_unit_is_seconds_and_written_as_imagej_spells_it(
    tmp_path: Path,
) -> None:
    """No tunit: ImageJ means seconds; written back as ImageJ's "sec"; µs as "us"."""
    src = _imagej_series(tmp_path / "movie.tif", 0.5)
    cal = io.read_calibration(src)
    assert cal is not None and (cal.t, cal.t_unit) == (0.5, "s")
    out = io.write_tiff(tmp_path / "back.tif", FRAMES, {}, axes="TYX", calibration=cal)
    with tifffile.TiffFile(out) as tf:
        assert (tf.imagej_metadata or {})["tunit"] == "sec"
    assert io.read_calibration(out) == cal
    micro = Calibration(0.5, 0.5, t=20, t_unit="µs")
    out = io.write_tiff(tmp_path / "us.tif", FRAMES, {}, axes="TYX", calibration=micro)
    with tifffile.TiffFile(out) as tf:
        assert (tf.imagej_metadata or {})["tunit"] == "us"
    assert io.read_calibration(out) == micro


@pytest.mark.parametrize(
    ("finterval", "tunit", "why"),
    [
        (-1.0, "sec", "not within"),
        ("nan", "sec", "not within"),
        (1e12, "sec", "not within"),
        (2.0, "fortnight", "'fortnight' is not one of"),
        (2.0, "jiffies", "'jiffies' is not one of"),
    ],
)
def test_a_time_interval_that_is_not_one_is_dropped_with_a_note(
    tmp_path: Path, finterval: object, tunit: str, why: str
) -> None:
    """What an input says is data: the pixel size is kept, the interval dropped, and the
    note (provenance's calibration_note) says why; nothing of it reaches an output."""
    src = _imagej_series(tmp_path / "bad.tif", finterval, tunit)
    cal, note = _note(src)
    assert cal == Calibration(0.5, 0.5, "µm")
    assert note is not None and why in note and "without a time interval" in note
    assert "\n" not in note


def test_no_interval_and_imagejs_zero_add_nothing(tmp_path: Path) -> None:
    assert _note(_imagej_series(tmp_path / "zero.tif", 0.0)) == (Calibration(0.5, 0.5), None)
    meta = {"axes": "TYX", "unit": "um"}
    tifffile.imwrite(tmp_path / "none.tif", FRAMES, imagej=True, resolution=(2, 2), metadata=meta)
    cal = io.read_calibration(tmp_path / "none.tif")
    assert cal is not None and cal.t is None


def test_the_interval_is_written_only_with_a_t_axis() -> None:
    """A Z stack or one image has no time axis: no finterval, no TimeIncrement."""
    cal = Calibration(0.5, 0.5, "µm", z=2.0, t=3.0, t_unit="s")
    for axes in ("ZYX", "YX", "CYX"):
        meta = tiff_kwargs(axes, cal, {}, ome=False)["metadata"]
        assert "finterval" not in meta and "tunit" not in meta
        assert "TimeIncrement" not in tiff_kwargs(axes, cal, {}, ome=True)["metadata"]
    assert tiff_kwargs("TZYX", cal, {}, ome=False)["metadata"]["finterval"] == 3.0


def test_a_stated_pixel_size_keeps_the_files_interval() -> None:
    """run --pixel-size replaces the pixel size written into outputs, not the interval."""
    found = Calibration(0.5, 0.5, "µm", z=1.0, t=2.5, t_unit="min")
    stated = scale.output_calibration(0.25, found)
    assert stated == Calibration(0.25, 0.25, "µm", z=1.0, t=2.5, t_unit="min")
    assert scale.output_calibration(0.25, None) == Calibration(0.25, 0.25, "µm")


def test_converting_to_micrometres_keeps_the_interval() -> None:
    cal = Calibration(4.0, 4.0, "nm", t=1.5, t_unit="h").in_micrometres()
    assert cal == Calibration(0.004, 0.004, "µm", t=1.5, t_unit="h")


def test_an_interval_without_a_pixel_size_is_no_calibration_and_no_note(tmp_path: Path) -> None:
    """An ImageJ series in pixels or an OME one without PhysicalSize gives no calibration;
    its interval is not dropped (it is read on its own: tests/contracts/test_interval_alone.py)."""
    meta = {"axes": "TYX", "finterval": 2.0}
    tifffile.imwrite(tmp_path / "ij.tif", FRAMES, imagej=True, metadata=meta)
    meta = {"axes": "TYX", "TimeIncrement": 2.0, "TimeIncrementUnit": "s"}
    tifffile.imwrite(tmp_path / "ome.tif", FRAMES, ome=True, metadata=meta)
    for name in ("ij.tif", "ome.tif"):
        assert _note(tmp_path / name) == (None, None), name
