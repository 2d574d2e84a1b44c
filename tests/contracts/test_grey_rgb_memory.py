"""The in-memory estimate of RGB stored grey (a 1-channel model, no colour picked) counts one
colour for the compute, as the in-memory path holds it: the grey is copied out and the file's
colours let go before the compute (issue 21's leftovers)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from memory_helpers import peak_bytes

from unet_edge import Segmenter, io, processing
from unet_edge.paths import files


@pytest.fixture(scope="module")
def seg(tiny_onnx: Path) -> Segmenter:
    return Segmenter(tiny_onnx)


@pytest.fixture(scope="module")
def grey(isbi_image: np.ndarray) -> np.ndarray:
    """(300, 260) uint16 real EM pixels, 12-bit."""
    return np.ascontiguousarray(isbi_image[:300, :260]).astype(np.uint16) * 16


def _rgb(path: Path, grey: np.ndarray) -> Path:
    tifffile.imwrite(path, np.dstack([grey] * 3), photometric="rgb")
    return path


def test_the_estimate_counts_one_colour(seg: Segmenter, grey: np.ndarray, tmp_path: Path) -> None:
    header = io.image_header(_rgb(tmp_path / "g.tif", grey))
    pixels = 300 * 260
    # every colour: raw (3 x 2) and float32 (3 x 4), probabilities twice (2 x 2 x 4), masks
    assert files.in_memory_bytes(header, 2) == pixels * (3 * (2 + 4) + 16 + 2) == pixels * 36
    # grey: the read (3 colours and the grey copied out) or the compute on one colour
    assert files.in_memory_bytes(header, 2, grey=True) == pixels * max(4 * 2, 2 + 4 + 18)
    plan = files.plan_files([tmp_path / "g.tif"], tmp_path / "o")[0]
    assert files.preflight(seg, plan).in_memory == pixels * 24
    # a colour picked: counted by the channel rule, not as grey
    picked = files.plan_files([tmp_path / "g.tif"], tmp_path / "o", channel=0)[0]
    assert files.preflight(seg, picked).in_memory == pixels * 24


def test_a_jpegs_check_is_counted(seg: Segmenter, grey: np.ndarray, tmp_path: Path) -> None:
    """A JPEG's colours may differ by a few levels: the check holds 64-bit copies of two
    colour planes and their difference (3 x 8 bytes a pixel) with the file (3 x 1)."""
    eight = (grey // 16).astype(np.uint8)
    assert cv2.imwrite(str(tmp_path / "g.jpg"), np.dstack([eight] * 3))
    header = io.image_header(tmp_path / "g.jpg")
    assert header.axes == "YXS" and header.dtype == np.uint8
    pixels = 300 * 260
    want = pixels * max(3 * 1 + 24, 1 + 4 + 18)
    assert files.in_memory_bytes(header, 2, grey=True) == want == pixels * 27
    plan = files.plan_files([tmp_path / "g.jpg"], tmp_path / "o")[0]
    assert files.preflight(seg, plan).in_memory == want
    r = files.segment_file(seg, tmp_path / "g.jpg", tmp_path / "o")  # taken as grey
    assert "grey stored as RGB" in r.provenance["axes_note"]


def test_grey_rgb_that_fits_as_one_colour_stays_in_memory(
    seg: Segmenter, grey: np.ndarray, tmp_path: Path
) -> None:
    src = _rgb(tmp_path / "g.tif", grey)
    limit = 300 * 260 * 30  # between one colour (24 bytes a pixel) and every colour (36)
    r = files.segment_file(seg, src, tmp_path / "o", memory_limit=limit)
    assert not r.windowed
    want = processing.mask_to_image(seg.segment(grey), 2)
    assert np.array_equal(tifffile.imread(r.outputs["mask"]), want)


def test_the_colours_are_let_go_before_the_compute(
    seg: Segmenter, isbi_image: np.ndarray, tmp_path: Path
) -> None:
    """Measured: RGBA stored grey (uint16) peaks at about segmenting the grey alone, as the
    estimate says (before, the file's colours were held through the compute: about 25%
    more; here 30.3 against 24.3 bytes a pixel)."""
    g = np.tile(isbi_image.astype(np.uint16) * 16, (2, 2))[:1000, :1000]
    tifffile.imwrite(tmp_path / "g.tif", g)
    rgba = np.dstack([g, g, g, 4095 - g])  # an alpha that differs is ignored
    tifffile.imwrite(tmp_path / "c.tif", rgba, photometric="rgb", extrasamples=["unassalpha"])
    files.segment_file(seg, tmp_path / "g.tif", tmp_path / "warm")  # first-run caches
    alone = peak_bytes(lambda: files.segment_file(seg, tmp_path / "g.tif", tmp_path / "a"))
    read = peak_bytes(lambda: io.read_file(tmp_path / "c.tif"))
    taken = peak_bytes(lambda: files.segment_file(seg, tmp_path / "c.tif", tmp_path / "o"))
    assert taken <= 1.1 * max(read, alone), (taken, read, alone)
    estimate = files.in_memory_bytes(io.image_header(tmp_path / "c.tif"), 2, grey=True)
    assert abs(taken - estimate) < 0.1 * estimate, (taken, estimate)
    assert np.array_equal(
        tifffile.imread(tmp_path / "o" / "c_mask.tif"),
        tifffile.imread(tmp_path / "a" / "g_mask.tif"),
    )
