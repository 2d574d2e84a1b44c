"""The memory estimate of a file with one channel picked counts that channel for the compute
(the others are let go once it is copied out), so an image that fits with one channel is
neither sent window by window nor refused (issue 20's leftovers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from memory_helpers import peak_bytes

from unet_edge import Segmenter, io, processing
from unet_edge.errors import InputError
from unet_edge.paths import files


@pytest.fixture(scope="module")
def seg(tiny_onnx: Path) -> Segmenter:
    return Segmenter(tiny_onnx)


@pytest.fixture(scope="module")
def planes(isbi_image: np.ndarray) -> np.ndarray:
    """Four different (300, 260) uint16 channels of real EM pixels, CYX."""
    a = isbi_image[:300, :260].astype(np.uint16) * 16
    return np.stack([a, a[::-1] // 2 + 100, np.ascontiguousarray(a[:, ::-1]), a // 3])


def _composite(path: Path, planes: np.ndarray) -> Path:
    tifffile.imwrite(path, planes, imagej=True, metadata={"axes": "CYX"})
    return path


def test_the_estimate_counts_the_picked_channel_for_the_compute(
    planes: np.ndarray, tmp_path: Path
) -> None:
    header = io.image_header(_composite(tmp_path / "c.tif", planes))
    pixels = 300 * 260
    # every channel: raw (4 x 2 bytes) and float32 (4 x 4), probabilities twice (2 x 2 x 4), masks
    assert files.in_memory_bytes(header, 2) == pixels * (4 * (2 + 4) + 16 + 2) == pixels * 42
    # one picked: the read (4 channels and the copy, 5 x 2) or the compute on one channel
    picked = files.in_memory_bytes(header, 2, picked=True)
    assert picked == pixels * max(5 * 2, 1 * (2 + 4) + 16 + 2) == pixels * 24
    # with many channels the read is what counts
    many = np.concatenate([planes] * 4)  # 16 channels
    header = io.image_header(_composite(tmp_path / "m.tif", many))
    assert files.in_memory_bytes(header, 2, picked=True) == pixels * 17 * 2


def test_a_composite_that_fits_with_one_channel_stays_in_memory(
    seg: Segmenter, planes: np.ndarray, tmp_path: Path
) -> None:
    src = _composite(tmp_path / "c.tif", planes)
    limit = 300 * 260 * 30  # between 24 (one channel) and 42 (every channel) bytes a pixel
    plan = files.plan_files([src], tmp_path / "p", channel=2)[0]
    check = files.preflight(seg, plan, memory_limit=limit)
    assert not check.windowed and check.in_memory == 300 * 260 * 24
    r = files.segment_file(seg, src, tmp_path / "o", channel=2, memory_limit=limit)
    assert not r.windowed
    want = processing.mask_to_image(seg.segment(planes[2]), 2)
    assert np.array_equal(tifffile.imread(r.outputs["mask"]), want)
    # a TIFF whose picked channel does not fit still goes window by window, with the same mask
    small = files.segment_file(seg, src, tmp_path / "w", channel=2, memory_limit=300 * 260 * 20)
    assert small.windowed
    assert np.array_equal(tifffile.imread(small.outputs["mask"]), want)


def test_an_rgb_png_that_fits_with_one_colour_is_not_refused(
    seg: Segmenter, planes: np.ndarray, tmp_path: Path
) -> None:
    rgb = np.ascontiguousarray(np.moveaxis(planes[:3] // 256, 0, -1).astype(np.uint8))
    io.write_png(tmp_path / "c.png", rgb)
    # every colour: 3 x (1 + 4) + 16 + 2 = 33 bytes a pixel; one: max(4 x 1, 1 + 4 + 18) = 23
    limit = 300 * 260 * 28
    # no colour picked: counted as one too (taken as grey, or refused by its colours, not
    # by its size: in_memory_bytes(grey=True))
    with pytest.raises(InputError, match="is a colour image"):
        files.segment_file(seg, tmp_path / "c.png", tmp_path / "x", memory_limit=limit)
    r = files.segment_file(seg, tmp_path / "c.png", tmp_path / "o", channel=1, memory_limit=limit)
    want = processing.mask_to_image(seg.segment(rgb[..., 1]), 2)
    assert np.array_equal(io.read_image(r.outputs["mask"]), want)


def test_the_other_channels_are_let_go_before_the_compute(
    seg: Segmenter, planes: np.ndarray, tmp_path: Path
) -> None:
    """Measured: segmenting one channel of 16 peaks at about the larger of reading the file
    and segmenting that channel alone, not at their sum (the estimate's assumption)."""
    many = np.concatenate([planes] * 4)  # 16 uint16 channels
    src = _composite(tmp_path / "m.tif", many)
    tifffile.imwrite(tmp_path / "one.tif", many[3])
    files.segment_file(seg, tmp_path / "one.tif", tmp_path / "warm")  # first-run caches
    alone = peak_bytes(lambda: files.segment_file(seg, tmp_path / "one.tif", tmp_path / "a"))
    read = peak_bytes(lambda: io.read_file(src))
    picked = peak_bytes(lambda: files.segment_file(seg, src, tmp_path / "o", channel=3))
    assert read + alone > 1.4 * max(read, alone)  # the sum is told apart from the larger
    assert picked <= 1.15 * max(read, alone), (picked, read, alone)
