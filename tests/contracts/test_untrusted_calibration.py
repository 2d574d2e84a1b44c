"""An input's pixel size is data, not trusted: units from an allow-list, sizes in range, and
nothing an input says reaches an ImageJ description or OME-XML but an allowed unit and
finite numbers (unet_edge/imagemeta.py, unet_edge/io/read.py, both output paths).

Each case asserts the exact outcome: the calibration read (or None with its note), what the
mask's ImageJ description / OME-XML holds on the in-memory and the windowed path, and that
writing never raises.
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from unet_edge import io
from unet_edge.cli import main
from unet_edge.imagemeta import SIZE_RANGE, UNITS, Calibration
from unet_edge.paths.files import segment_file
from unet_edge.runtime import Segmenter

# The keys tifffile writes into an ImageJ description, and the ones a calibration adds.
IMAGEJ_KEYS = {"ImageJ", "images", "hyperstack", "mode", "slices", "channels", "unit", "spacing"}
IMAGEJ_KEYS |= {"loop", "min", "max", "frames"}
PATHS = [False, True]  # in memory, window by window
FORMATS = ["tiff", "ome-tiff"]


def _ome(unit: str, x: str = "0.5", y: str | None = None, extra: str = "") -> bytes:
    """An OME-XML description of a 48 x 64 uint8 image with the given raw attribute text."""
    y = x if y is None else y
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
        '<Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint8" '
        'SizeX="64" SizeY="48" SizeC="1" SizeZ="1" SizeT="1" '
        f'PhysicalSizeX="{x}" PhysicalSizeY="{y}" PhysicalSizeXUnit="{unit}" '
        f'PhysicalSizeYUnit="{unit}" {extra}><TiffData/></Pixels></Image></OME>'
    ).encode()


def _image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (48, 64), np.uint8)


def _ome_input(folder: Path, unit: str, x: str = "0.5", **kw: Any) -> Path:
    path = folder / "in.tif"
    tifffile.imwrite(path, _image(), description=_ome(unit, x, **kw), metadata=None)
    return path


def _imagej_input(folder: Path, unit: str, res: float = 2.0, **meta: Any) -> Path:
    path = folder / "ij.tif"
    tifffile.imwrite(
        path, _image(), imagej=True, resolution=(res, res), metadata={"unit": unit, **meta}
    )
    return path


@pytest.fixture(scope="module")
def seg(tiny_onnx: Path) -> Segmenter:
    return Segmenter(tiny_onnx)


def _check_clean(out: Path) -> tuple[str, dict[str, str]]:
    """The description of the mask ``out``, checked: ImageJ lines are known ``key=value``
    pairs of printable ASCII; OME-XML has no control character and only allowed units.
    Returns (description, the ImageJ key/values or the Pixels attributes)."""
    with tifffile.TiffFile(out) as tf:
        desc = tf.pages.first.description
        ome = tf.is_ome
    if ome:
        assert not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", desc), desc
        pixels = ET.fromstring(desc).find(".//{*}Pixels")
        assert pixels is not None
        units = [v for k, v in pixels.attrib.items() if k.endswith("Unit")]
        assert set(units) <= set(UNITS), units
        return desc, dict(pixels.attrib)
    pairs = {}
    for line in desc.split("\n"):
        key, sep, value = line.partition("=")
        assert sep and key in IMAGEJ_KEYS and value.isprintable() and value.isascii(), line
        assert key not in pairs, f"{key} given twice in {desc!r}"
        pairs[key] = value
    return desc, pairs


def _segment(seg: Segmenter, path: Path, out: Path, fmt: str, large: bool) -> Path:
    r = segment_file(seg, path, out, output_format=fmt, large=large)
    assert r.windowed is large
    return r.outputs["mask"]


# -- injection, control characters, absurd sizes: uncalibrated, with a note, on every path --
INJECT = "um&#10;spacing=77&#10;unit=km"  # OME-XML attribute: "um\nspacing=77\nunit=km"
UNTAKEN = [
    ("newline-injection", lambda d: _ome_input(d, INJECT), "'um\\nspacing=77\\nunit=km'"),
    ("ome-1e300", lambda d: _ome_input(d, "µm", "1e300"), "1e+300 µm"),
    ("ome-1e-300", lambda d: _ome_input(d, "µm", "1e-300"), "1e-300 µm"),
    ("ome-non-ascii-unit", lambda d: _ome_input(d, "ľm"), "'\\u013em'"),
    ("ome-nan", lambda d: _ome_input(d, "µm", "NaN"), "in x, 'NaN' µm"),
    ("ome-inf", lambda d: _ome_input(d, "nm", "INF"), "inf nm"),
    ("ome-negative", lambda d: _ome_input(d, "µm", "-0.5"), "-0.5 µm"),
    ("ome-zero", lambda d: _ome_input(d, "µm", "0"), "in x, 0 µm"),
    ("ome-text", lambda d: _ome_input(d, "µm", "wide"), "'wide'"),
    ("ome-y-out-of-range", lambda d: _ome_input(d, "µm", "0.5", y="1e7"), "in y, 1e+07 µm"),
    ("ome-km", lambda d: _ome_input(d, "km"), "unit 'km'"),
    ("ome-escape-entity", lambda d: _ome_input(d, "um&#27;]0;x&#7;"), "cannot be read"),
    ("imagej-escape", lambda d: _imagej_input(d, "um\x1b]0;owned\x07"), "'um\\x1b]0;owned\\x07'"),
    ("imagej-furlong", lambda d: _imagej_input(d, "furlong"), "unit 'furlong'"),
    ("imagej-micron-1e-9", lambda d: _imagej_input(d, "micron", res=1e9), "1e-09 µm"),
]


@pytest.mark.parametrize("large", PATHS, ids=["in-memory", "windowed"])
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("make", "shown"), [u[1:] for u in UNTAKEN], ids=[u[0] for u in UNTAKEN])
def test_untaken_calibration_is_dropped_with_a_note(
    seg: Segmenter, tmp_path: Path, make: Any, shown: str, fmt: str, large: bool
) -> None:
    path = make(tmp_path)
    with io.open_image(path) as opened:
        cal, note = opened.calibration(), opened.calibration_note()
    assert cal is None and io.read_calibration(path) is None
    assert note is not None and shown in note and note.isprintable()
    assert note.endswith("the outputs are written without a pixel size")
    mask = _segment(seg, path, tmp_path / "out", fmt, large)
    desc, fields = _check_clean(mask)
    said = desc if fmt == "tiff" else json.dumps(fields)  # OME: the Pixels element
    assert "77" not in said and "km" not in said and "\x1b" not in desc
    assert not any(k.startswith("PhysicalSize") for k in fields) and "unit" not in fields
    assert "spacing" not in fields
    assert io.read_calibration(mask) is None
    assert io.read_provenance(mask)["calibration_note"] == note
    with tifffile.TiffFile(mask) as tf:  # no 0/1 resolution ("infinitely large pixels")
        assert tf.pages.first.tags.valueof("XResolution") == (1, 1)


# -- what is taken: allowed spellings, normalised, within range ------------------------------
SPELLINGS = [
    ("micron", "µm"),
    ("microns", "µm"),
    ("um", "µm"),
    ("UM", "µm"),
    ("\u03bcm", "µm"),  # Greek mu
    ("\\u00B5m", "µm"),  # ImageJ's escaped spelling
    ("micrometre", "µm"),
    (" µm ", "µm"),
    ("nanometer", "nm"),
    ("nm", "nm"),
    ("angstrom", "Å"),
    ("\u212b", "Å"),  # the angstrom sign
    ("pm", "pm"),
    ("mm", "mm"),
    ("cm", "cm"),
    ("meter", "m"),
    ("inch", "in"),
]


@pytest.mark.parametrize(("spelling", "symbol"), SPELLINGS)
def test_allowed_spellings_are_normalised(spelling: str, symbol: str) -> None:
    size = 1e-3 / UNITS[symbol] * 100  # 0.1 µm, whatever the unit
    assert Calibration.checked(size, size, spelling) == (Calibration(size, size, symbol), None)


@pytest.mark.parametrize("unit", ["pixel", "pixels", "", None, "none", "px"])
def test_no_physical_unit_is_uncalibrated_without_a_note(unit: str | None) -> None:
    assert Calibration.checked(0.5, 0.5, unit) == (None, None)


@pytest.mark.parametrize(
    "unit", ["Mm", "km", "mile", "um\nunit=km", "µm\x00", "ųm", 3, b"um", ["um"], "µ" * 10_000]
)
def test_units_off_the_allow_list_are_dropped(unit: Any) -> None:
    cal, note = Calibration.checked(0.5, 0.5, unit)
    assert cal is None and note is not None and "is not one of pm, Å, nm, µm" in note
    assert note.isprintable() and len(note) < 200


@pytest.mark.parametrize(
    ("size", "unit", "taken"),
    [
        (SIZE_RANGE[0], "µm", True),
        (SIZE_RANGE[1], "µm", True),
        (SIZE_RANGE[0] * 0.999, "µm", False),
        (SIZE_RANGE[1] * 1.001, "µm", False),
        (1.0, "pm", True),  # 1e-6 µm
        (0.5, "pm", False),
        (1.0, "m", True),  # 1e6 µm
        (40.0, "in", False),  # about 1.02 m
        (True, "µm", False),
        (math.nan, "nm", False),
        (-math.inf, "nm", False),
        ("1e400", "nm", False),
    ],
)
def test_sizes_within_range_only(size: Any, unit: str, taken: bool) -> None:
    cal, note = Calibration.checked(size, size, unit)
    assert (cal is not None) is taken and (note is None) is taken


def test_slice_spacing_out_of_range_is_left_out_alone() -> None:
    cal, note = Calibration.checked(0.5, 0.5, "µm", 1e300)
    assert cal == Calibration(0.5, 0.5, "µm", None)
    assert note is not None and "slice spacing 1e+300 µm" in note and "left out" in note


def test_ome_units_per_axis_are_converted_to_x(tmp_path: Path) -> None:
    path = _ome_input(tmp_path, "µm", "0.5", y="500", extra="")
    raw = path.read_bytes().replace(b'PhysicalSizeYUnit="\xc2\xb5m"', b'PhysicalSizeYUnit="nm"')
    path.write_bytes(raw)
    assert io.read_calibration(path) == Calibration(0.5, 0.5, "µm")


@pytest.mark.parametrize("large", PATHS, ids=["in-memory", "windowed"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_good_calibration_is_carried_on_every_path(
    seg: Segmenter, tmp_path: Path, fmt: str, large: bool
) -> None:
    path = _ome_input(tmp_path, "nm", "500")
    mask = _segment(seg, path, tmp_path / "out", fmt, large)
    _, fields = _check_clean(mask)
    assert io.read_calibration(mask) == Calibration(500.0, 500.0, "nm")
    assert "calibration_note" not in io.read_provenance(mask)
    if fmt == "tiff":
        assert fields["unit"] == "nm"


# -- writing never raises, whatever the caller passes --------------------------------------
WRITTEN = [
    (Calibration(1e-300, 1e-300, "µm"), None),
    (Calibration(1e300, 1e300, "µm"), None),
    (Calibration(math.nan, 0.5, "µm"), None),
    (Calibration(0.5, 0.5, "um\nspacing=77\nunit=km"), None),
    (Calibration(0.5, 0.5, "\x1b]0;owned\x07"), None),
    (Calibration(0.5, 0.5, "ľm"), None),
    (Calibration("abc", 0.5, "µm"), None),  # type: ignore[arg-type]
    (Calibration(0.5, 0.5, "micron", 1e300), Calibration(0.5, 0.5, "µm")),
    (Calibration(1e9, 1e9, "pm"), Calibration(1000.0, 1000.0, "µm")),  # 1 mm pixels, in pm
    (Calibration(1e-6, 1e-6, "µm"), Calibration(1e-6, 1e-6, "µm")),  # OME: no resolution tags
    (Calibration(1e6, 1e6, "µm"), Calibration(1e6, 1e6, "µm")),
]


def _writable_unit(given: Calibration) -> str:
    """The unit OME-XML keeps: the given one, as its OME symbol."""
    cal = Calibration.make(1.0, 1.0, given.unit)
    assert cal is not None
    return cal.unit


@pytest.mark.parametrize("ome", [False, True], ids=["imagej", "ome"])
@pytest.mark.parametrize(("given", "read"), WRITTEN)
def test_writing_a_calibration_never_raises(
    tmp_path: Path, given: Calibration, read: Calibration | None, ome: bool
) -> None:
    name = "m.ome.tif" if ome else "m.tif"
    out = io.write_tiff(tmp_path / name, _image(), {"a": 1}, axes="YX", calibration=given, ome=ome)
    _check_clean(out)
    got = io.read_calibration(out)
    if read is None:
        assert got is None
    else:
        um, want = got.in_micrometres() if got else None, read.in_micrometres()
        assert um is not None and want is not None and got is not None and got.z is None
        assert (um.x, um.y) == pytest.approx((want.x, want.y), rel=1e-6)
        assert got.unit == (read.unit if not ome else _writable_unit(given))
    bands = iter([_image()])
    strips = tmp_path / f"s{name}"
    io.write_tiff_strips(strips, bands, (48, 64), 48, {"a": 1}, calibration=given, ome=ome)
    _check_clean(strips)
    assert io.read_calibration(strips) == got


def test_run_prints_the_note_as_one_line(tiny_onnx: Path, tmp_path: Path) -> None:
    path = _ome_input(tmp_path, INJECT)
    args = ["run", str(path), "-m", str(tiny_onnx), "-o", str(tmp_path / "o")]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    noted = [ln for ln in r.output.splitlines() if "pixel size" in ln]
    assert noted == [
        f"{path}: the input's pixel size unit 'um\\nspacing=77\\nunit=km' is not one of pm, Å, "
        "nm, µm, mm, cm, m, in; the outputs are written without a pixel size"
    ]
    prov = io.read_provenance(tmp_path / "o" / "in_mask.tif")
    assert json.dumps(prov).count("spacing=77") == 1  # the note, JSON-escaped, nowhere else
