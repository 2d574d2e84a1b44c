"""Outputs that open right in Fiji/ImageJ and Bio-Formats: hyperstack axes, the input's pixel
size, provenance that survives, OME-TIFF, striped windowed masks, PNG text chunks, and a real
ImageJ 1.x opening them (when Java and ImageJ are installed)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from click.testing import CliRunner
from imagej_runner import imagej_command

from unet_edge import io, processing
from unet_edge.cli import main
from unet_edge.imagemeta import PROVENANCE_KEY, Calibration, png_text
from unet_edge.io import windows
from unet_edge.paths.files import FileResult, segment_file
from unet_edge.runtime import Segmenter

FORMATS = ["tiff", "ome-tiff"]
OME_NS = "{http://www.openmicroscopy.org/Schemas/OME/2016-06}"


def _image(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Smooth uint16 content (12-bit range), so the tiny model's mask has both classes."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=shape).astype(np.float32)
    blurred = cv2.GaussianBlur(noise.reshape(-1, shape[-1]), (0, 0), 3).reshape(shape)
    scaled = (blurred - blurred.min()) / np.ptp(blurred) * 4095
    return scaled.astype(np.uint16)


def write_calibrated(kind: str, folder: Path) -> tuple[Path, Calibration, bool]:
    """An input with its pixel size in resolution tags, ImageJ metadata or OME-XML; returns
    (path, the calibration it states, whether it is a stack)."""
    path = folder / f"{kind}.tif"
    if kind == "tags":  # plain TIFF, pixels per centimetre; x and y differ on purpose
        tifffile.imwrite(
            path, _image((64, 80)), resolution=(2.5e6, 2e6), resolutionunit="CENTIMETER"
        )
        return path, Calibration(0.004, 0.005, "µm"), False
    if kind == "imagej":  # a Z stack as Fiji saves it
        tifffile.imwrite(
            path,
            _image((3, 64, 80), 1),
            imagej=True,
            resolution=(250.0, 250.0),
            metadata={"axes": "ZYX", "unit": "micron", "spacing": 0.05},
        )
        return path, Calibration(0.004, 0.004, "µm", 0.05), True
    meta = {"axes": "YX", "PhysicalSizeX": 4.0, "PhysicalSizeXUnit": "nm"}
    meta.update(PhysicalSizeY=5.0, PhysicalSizeYUnit="nm")
    tifffile.imwrite(path, _image((64, 80), 2), ome=True, metadata=meta)
    return path, Calibration(4.0, 5.0, "nm"), False


def assert_calibration(got: Calibration | None, want: Calibration, z: bool = True) -> None:
    assert got is not None and got.unit == want.unit
    assert (got.x, got.y) == pytest.approx((want.x, want.y), rel=1e-9)
    if z and want.z is not None:
        assert got.z == pytest.approx(want.z, rel=1e-9)


@pytest.fixture(scope="module")
def seg(tiny_onnx: Path) -> Segmenter:
    return Segmenter(tiny_onnx, tile=284)


@pytest.fixture(params=["tags", "imagej", "ome"])
def calibrated(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, Calibration, bool]:
    return write_calibrated(request.param, tmp_path)


def test_input_calibration_is_read(calibrated: tuple[Path, Calibration, bool]) -> None:
    path, want, _ = calibrated
    assert_calibration(io.read_calibration(path), want)


def test_uncalibrated_inputs_have_no_calibration(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "plain.tif", _image((8, 8)))  # ResolutionUnit none
    io.write_png(tmp_path / "x.png", np.zeros((8, 8), np.uint8))
    assert io.read_calibration(tmp_path / "plain.tif") is None
    assert io.read_calibration(tmp_path / "x.png") is None


def _check_ome_xml(xml: str, shape: tuple[int, ...], axes: str, cal: Calibration) -> None:
    """OME-XML checked field by field against the 2016-06 schema's rules (the schema itself
    is checked by test_ome_xml_validates_against_schema where it is available)."""
    root = ET.fromstring(xml)
    assert root.tag == f"{OME_NS}OME"
    (image,) = root.findall(f"{OME_NS}Image")
    pixels = image.find(f"{OME_NS}Pixels")
    assert pixels is not None
    assert re.fullmatch(r"Image:\d+", image.get("ID", ""))
    assert re.fullmatch(r"Pixels:\d+", pixels.get("ID", ""))
    a = pixels.attrib
    assert a["DimensionOrder"] in {"XYZCT", "XYZTC", "XYCTZ", "XYCZT", "XYTCZ", "XYTZC"}
    sizes = dict(zip(axes, shape, strict=True))
    for axis in "XYZCT":
        assert int(a[f"Size{axis}"]) == sizes.get(axis, 1)
    assert float(a["PhysicalSizeX"]) == pytest.approx(cal.x)
    assert float(a["PhysicalSizeY"]) == pytest.approx(cal.y)
    assert a["PhysicalSizeXUnit"] == a["PhysicalSizeYUnit"] == cal.unit
    if "Z" in axes and cal.z is not None:
        assert float(a["PhysicalSizeZ"]) == pytest.approx(cal.z)
    channels = pixels.findall(f"{OME_NS}Channel")
    assert len(channels) == sizes.get("C", 1)
    assert all(re.fullmatch(r"Channel:\d+:\d+", c.get("ID", "")) for c in channels)
    (tiffdata,) = pixels.findall(f"{OME_NS}TiffData")
    assert int(tiffdata.get("PlaneCount", "0")) == sizes.get("Z", 1) * sizes.get("C", 1)
    keys = [m.get("K") for m in root.iter(f"{OME_NS}M")]
    assert keys == [PROVENANCE_KEY]


@pytest.mark.parametrize("fmt", FORMATS)
def test_outputs_carry_axes_calibration_and_provenance(
    seg: Segmenter, calibrated: tuple[Path, Calibration, bool], tmp_path: Path, fmt: str
) -> None:
    path, cal, stack = calibrated
    r = segment_file(
        seg, path, tmp_path / "out", probabilities=True, overlay=True, output_format=fmt
    )
    image = io.read_image(path)
    pred = seg.analyze(list(image) if stack else image)
    z = "Z" if stack else ""
    expected = {
        "mask": (f"{z}YX", processing.mask_to_image(pred.mask, seg.info.classes)),
        "probabilities": (f"{z}CYX", pred.probabilities),
    }
    for kind, (axes, data) in expected.items():
        out = r.outputs[kind]
        assert out.name.endswith(".ome.tif" if fmt == "ome-tiff" else ".tif")
        with tifffile.TiffFile(out) as tf:
            assert tf.series[0].axes == axes and np.array_equal(tf.series[0].asarray(), data)
            if fmt == "ome-tiff":
                assert tf.is_ome and not tf.is_imagej
                _check_ome_xml(tf.ome_metadata or "", data.shape, axes, cal)
            else:
                _check_imagej(tf, cal, stack)
        assert_calibration(io.read_calibration(out), cal, z=stack)
        assert io.read_provenance(out) == dict(r.provenance)
    assert io.read_provenance(r.outputs["overlay"]) == dict(r.provenance)


def _check_imagej(tf: tifffile.TiffFile, cal: Calibration, stack: bool) -> None:
    """The ImageJ fields themselves: unit and spacing in the description, pixels per unit
    in the resolution tags, provenance as the Info property."""
    ij = tf.imagej_metadata or {}
    assert tf.is_imagej and ij["unit"] == {"µm": "micron"}.get(cal.unit, cal.unit)
    assert ("spacing" in ij) == (stack and cal.z is not None)
    tags = tf.pages.first.tags
    assert tags.valueof("ResolutionUnit") == 1  # ImageJ: resolution in the description's unit
    xres, yres = tags.valueof("XResolution"), tags.valueof("YResolution")
    assert xres[1] / xres[0] == pytest.approx(cal.x) and yres[1] / yres[0] == pytest.approx(cal.y)
    assert json.loads(ij["Info"])["model_sha256"]


def _ome_schema() -> bytes:
    """The OME 2016-06 XML schema: UNET_EDGE_OME_XSD, or the copy the ome-types package ships."""
    given = os.environ.get("UNET_EDGE_OME_XSD")
    if given:
        return Path(given).read_bytes()
    spec = importlib.util.find_spec("ome_types")
    shipped = Path(spec.origin).parent / "ome-2016-06.xsd" if spec and spec.origin else None
    if shipped is None or not shipped.is_file():
        pytest.skip(
            "no OME schema: install ome-types (ships ome-2016-06.xsd) or set UNET_EDGE_OME_XSD"
        )
    return shipped.read_bytes()


def test_ome_xml_validates_against_schema(seg: Segmenter, tmp_path: Path) -> None:
    """Full XML Schema validation of --format ome-tiff outputs (stack: ZCYX and ZYX)."""
    pytest.importorskip("lxml", reason="schema validation needs lxml")
    schema = _ome_schema()
    path, _, _ = write_calibrated("imagej", tmp_path)
    r = segment_file(seg, path, tmp_path / "o", probabilities=True, output_format="ome-tiff")
    for out in r.outputs.values():
        with tifffile.TiffFile(out) as tf:
            xml = tf.ome_metadata or ""
        assert tifffile.OmeXml.validate(xml, schema) is True
        broken = xml.replace('DimensionOrder="', 'DimensionOrder="Q')  # not in the enumeration
        assert tifffile.OmeXml.validate(broken, schema, assert_=False) is False


@pytest.mark.parametrize("fmt", FORMATS)
def test_windowed_output_is_striped_and_equals_in_memory(
    seg: Segmenter, tmp_path: Path, fmt: str
) -> None:
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, _image((410, 300), 3), resolution=(2.5e6, 2e6), resolutionunit=3)
    mem = segment_file(seg, path, tmp_path / "mem", large=False, output_format=fmt)
    win = segment_file(seg, path, tmp_path / "win", large=True, output_format=fmt)
    assert win.windowed and not mem.windowed
    a, b = mem.outputs["mask"], win.outputs["mask"]
    with tifffile.TiffFile(a) as ta, tifffile.TiffFile(b) as tb:
        page = tb.pages.first
        assert np.array_equal(ta.asarray(), tb.asarray())
        assert ta.series[0].axes == tb.series[0].axes == "YX"
        assert (tb.is_imagej, tb.is_ome) == (fmt == "tiff", fmt == "ome-tiff")
        assert not page.is_tiled and 0 < page.rowsperstrip < 410  # strips, several
        assert len(page.dataoffsets) == -(-410 // page.rowsperstrip)
        assert list(page.dataoffsets) == sorted(page.dataoffsets)  # written top to bottom
        assert not tb.is_bigtiff
    assert_calibration(io.read_calibration(b), Calibration(0.004, 0.005, "µm"))
    assert io.read_calibration(a) == io.read_calibration(b)
    prov = io.read_provenance(b)
    assert prov["model_sha256"] == mem.provenance["model_sha256"] and prov["source"] == "big.tif"


def test_striped_output_is_bigtiff_above_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mask = (_image((100, 70)) > 2000).astype(np.uint8) * 255
    cal = Calibration(0.5, 0.5, "µm")

    def write(name: str) -> tifffile.TiffFile:
        bands = (mask[r : r + 32] for r in range(0, 100, 32))
        out = io.write_tiff_strips(tmp_path / name, bands, (100, 70), 32, {"a": 1}, calibration=cal)
        return tifffile.TiffFile(out)

    with write("small.tif") as tf:
        assert not tf.is_bigtiff and np.array_equal(tf.asarray(), mask)
    monkeypatch.setattr(windows, "BIGTIFF_ABOVE", 100 * 70 - 1)
    with write("big.tif") as tf:
        assert tf.is_bigtiff and tf.is_imagej and np.array_equal(tf.asarray(), mask)
        assert tf.pages.first.rowsperstrip == 32
    assert io.read_provenance(tmp_path / "big.tif") == {"a": 1}
    assert io.read_calibration(tmp_path / "big.tif") == cal


def test_png_provenance_in_a_text_chunk(tmp_path: Path) -> None:
    img = (_image((30, 40)) >> 4).astype(np.uint8)
    prov = {"model_sha256": "ab" * 32, "normalization": [{"low": 0.0, "high": 1.0}]}
    p = io.write_png(tmp_path / "m.png", img, prov)
    data = p.read_bytes()
    assert data[37:41] == b"tEXt"  # right after the IHDR chunk, before the pixels
    assert np.array_equal(io.read_image(p), img)  # still an ordinary PNG
    assert io.read_provenance(p) == prov
    assert json.loads(png_text(data)[PROVENANCE_KEY]) == prov
    damaged = data.replace(b"model_sha256", b"model_sha257")  # the chunk's CRC no longer fits
    assert png_text(damaged) == {}
    assert io.read_provenance(io.write_png(tmp_path / "plain.png", img)) == {}


def test_png_text_chunk_reads_in_pillow(tmp_path: Path) -> None:
    image_mod = pytest.importorskip("PIL.Image", reason="an independent PNG reader (Pillow)")
    p = io.write_png(tmp_path / "m.png", np.zeros((5, 6), np.uint8), {"k": "v"})
    with image_mod.open(p) as im:
        im.load()
        assert json.loads(im.text[PROVENANCE_KEY]) == {"k": "v"}


def test_cli_format_ome_tiff(tiny_onnx: Path, tmp_path: Path) -> None:
    path, cal, _ = write_calibrated("tags", tmp_path)
    args = ["run", str(path), "-o", str(tmp_path / "o"), "-m", str(tiny_onnx), "--probabilities"]
    r = CliRunner().invoke(main, [*args, "--format", "ome-tiff"])
    assert r.exit_code == 0, r.output
    for name in ("tags_mask.ome.tif", "tags_probabilities.ome.tif"):
        assert_calibration(io.read_calibration(tmp_path / "o" / name), cal)
    bad = CliRunner().invoke(main, [*args, "--format", "ome"])
    assert bad.exit_code == 2 and "ome-tiff" in bad.output


# --- a real ImageJ 1.x -------------------------------------------------------------------


def _open_in_imagej(paths: list[Path]) -> dict[str, list[str]]:
    """ImageJ's view of each file: {name: [w, h, c, z, t, bits, unit, pw, ph, pd, info]}."""
    cmd = [*imagej_command("IjProbe.java"), *map(str, paths)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("\t") for line in proc.stdout.splitlines() if "\t" in line]
    assert [r[0] for r in rows] == ["OPENED"] * len(paths), proc.stdout + proc.stderr
    return {Path(r[1]).name: r[2:] for r in rows}


def test_real_imagej_opens_the_outputs(seg: Segmenter, tmp_path: Path) -> None:
    """ImageJ 1.x itself (no Bio-Formats) reads dimensions, pixel size and provenance."""
    command = imagej_command("IjProbe.java")  # skip before computing anything
    assert command
    stack, stack_cal, _ = write_calibrated("imagej", tmp_path)
    flat, flat_cal, _ = write_calibrated("tags", tmp_path)
    results: list[FileResult] = [
        segment_file(seg, stack, tmp_path / "s", probabilities=True),
        segment_file(seg, flat, tmp_path / "w", large=True),
        segment_file(seg, flat, tmp_path / "o", output_format="ome-tiff"),
    ]
    paths = [p for r in results for p in r.outputs.values()]
    seen = _open_in_imagej(paths)

    def check(name: str, dims: tuple[int, ...], bits: int, cal: Calibration) -> list[str]:
        row = seen[name]
        assert tuple(map(int, row[:6])) == (*dims, bits), (name, row)
        assert row[6] in ({"micron", "µm"} if cal.unit == "µm" else {cal.unit}), (name, row)
        sizes = tuple(map(float, row[7:10]))
        assert sizes == pytest.approx((cal.x, cal.y, cal.z or 1.0), rel=1e-6), (name, row)
        return row

    # ImageJ hyperstacks: (width, height, channels, slices, frames)
    mask = check("imagej_mask.tif", (80, 64, 1, 3, 1), 8, stack_cal)
    check("imagej_probabilities.tif", (80, 64, 2, 3, 1), 32, stack_cal)
    assert json.loads(mask[10]) == dict(results[0].provenance)  # Image > Show Info
    windowed = check("tags_mask.tif", (80, 64, 1, 1, 1), 8, flat_cal)  # striped, from --large
    assert json.loads(windowed[10])["source"] == "tags.tif"
    # OME-TIFF without Bio-Formats: the pixel size comes from the resolution tags (cm)
    check("tags_mask.ome.tif", (80, 64, 1, 1, 1), 8, flat_cal)
