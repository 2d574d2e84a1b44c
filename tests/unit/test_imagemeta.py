"""What an output file says about itself (unet_edge/imagemeta.py): the pixel size and the
provenance round-trip through ImageJ hyperstacks, OME-TIFF and PNG text chunks; units are
normalised to their OME symbols."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from unet_edge import imagemeta
from unet_edge.errors import OutputError
from unet_edge.imagemeta import PROVENANCE_KEY, Calibration


def _png() -> bytes:
    ok, buf = cv2.imencode(".png", np.arange(12, dtype=np.uint8).reshape(3, 4))
    assert ok
    return buf.tobytes()


def test_png_text_round_trip_keeps_the_image() -> None:
    png = _png()
    text = json.dumps({"model": "µ-net", "tile": [188, 188]})
    out = imagemeta.png_with_text(png, PROVENANCE_KEY, text)
    assert imagemeta.png_text(out) == {PROVENANCE_KEY: text}
    assert imagemeta.png_text(png) == {}
    decoded = cv2.imdecode(np.frombuffer(out, np.uint8), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(decoded, np.arange(12, dtype=np.uint8).reshape(3, 4))


def test_a_text_chunk_with_a_bad_crc_is_ignored() -> None:
    out = bytearray(imagemeta.png_with_text(_png(), "k", "v"))
    at = 8 + 25  # the tEXt chunk follows the 25-byte IHDR chunk
    assert out[at + 4 : at + 8] == b"tEXt"
    out[at + 8 + 2] ^= 0xFF  # damage its data, not its CRC
    assert imagemeta.png_text(bytes(out)) == {}


def test_png_with_text_refuses_a_stream_without_ihdr_first() -> None:
    with pytest.raises(OutputError, match="does not start with IHDR"):
        imagemeta.png_with_text(b"\x89PNG\r\n\x1a\n" + b"\0\0\0\0IEND", "k", "v")


def test_first_json_dict() -> None:
    texts = [None, "not json", "[1, 2]", '{"a": 1}', '{"b": 2}']
    assert imagemeta.first_json_dict(texts) == {"a": 1}
    assert imagemeta.first_json_dict(["Shape: (3, 3)", 5]) == {}


@pytest.mark.parametrize(
    ("unit", "symbol"),
    [("micron", "µm"), ("um", "µm"), ("μm", "µm"), ("\\u00B5m", "µm"), (" nm ", "nm"),
     ("Nanometers", "nm"), ("angstrom", "Å"), ("millimetre", "mm"), ("m", "m")],
)  # fmt: skip
def test_unit_spellings_become_ome_symbols(unit: str, symbol: str) -> None:
    assert Calibration.checked(0.5, 0.5, unit) == (Calibration(0.5, 0.5, symbol), None)


def test_pixels_are_no_unit_and_other_units_are_dropped_with_a_note() -> None:
    assert Calibration.checked(1, 1, "pixel") == (None, None)
    assert Calibration.checked(1, 1, None) == (None, None)
    cal, note = Calibration.checked(1, 1, "furlong")
    assert cal is None and note is not None and "'furlong' is not one of pm, Å, nm" in note
    cal, note = Calibration.checked(float("nan"), 1, "µm")
    assert cal is None and note and "pixel size in x" in note
    cal, note = Calibration.checked(0.5, 0.5, "µm", z=-1)
    assert cal == Calibration(0.5, 0.5, "µm") and note and "slice spacing -1 µm" in note


def test_conversions_to_micrometres_and_names() -> None:
    cal = Calibration(250.0, 500.0, "nm", 1000.0)
    assert cal.in_micrometres() == Calibration(0.25, 0.5, "µm", 1.0)
    assert cal.unit_name == "nanometer" and Calibration(1, 1, "Å").unit_name == "angstrom"
    assert Calibration(1, 1, "parsec").in_micrometres() is None


@pytest.mark.parametrize("ome", [False, True])
@pytest.mark.parametrize(
    "cal", [Calibration(0.25, 0.5, "µm", 2.0), Calibration(4.0, 4.0, "nm", 50.0), None]
)
def test_tiff_kwargs_round_trip(tmp_path: Path, ome: bool, cal: Calibration | None) -> None:
    path = tmp_path / "x.tif"
    provenance = {"model_sha256": "ab", "note": "line\nbreak"}
    kwargs = imagemeta.tiff_kwargs("ZYX", cal, provenance, ome)
    tifffile.imwrite(path, np.zeros((2, 3, 4), np.uint8), **kwargs)
    with tifffile.TiffFile(path) as tf:
        assert (tf.is_ome, tf.is_imagej) == (ome, not ome)
        assert tf.series[0].axes == "ZYX"
        assert imagemeta.calibration_of(tf) == cal
        assert imagemeta.provenance_of(tf) == provenance


def test_a_calibration_that_could_not_be_read_is_not_written(tmp_path: Path) -> None:
    bad = Calibration(float("inf"), 1.0, "µm")
    kwargs = imagemeta.tiff_kwargs("YX", bad, {}, ome=False)
    assert "resolution" not in kwargs and "unit" not in kwargs["metadata"]
    tifffile.imwrite(tmp_path / "x.tif", np.zeros((3, 4), np.uint8), **kwargs)
    with tifffile.TiffFile(tmp_path / "x.tif") as tf:
        assert imagemeta.calibration_of(tf) is None


def test_resolution_tags_in_centimetres_are_micrometres(tmp_path: Path) -> None:
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, np.zeros((3, 4), np.uint8), resolution=(1e4 / 0.5, 1e4 / 0.25),
                     resolutionunit=3)  # fmt: skip
    with tifffile.TiffFile(path) as tf:
        cal = imagemeta.calibration_of(tf)
    assert cal is not None and cal.unit == "µm"
    assert (cal.x, cal.y) == pytest.approx((0.5, 0.25))


def test_crc_helper_matches_zlib() -> None:
    # the chunk layout png_with_text writes: length, type, data, CRC over type and data
    out = imagemeta.png_with_text(_png(), "k", "v")
    at = 8 + 25
    (length,) = struct.unpack(">I", out[at : at + 4])
    data = out[at + 8 : at + 8 + length]
    assert data == b"k\0v"
    assert struct.unpack(">I", out[at + 8 + length : at + 12 + length])[0] == zlib.crc32(
        b"tEXt" + data
    )
