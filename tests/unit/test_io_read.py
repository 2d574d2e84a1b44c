"""Reading images (unet_edge/io/read.py): dtypes and stacks kept, header, calibration
and pixels from one open, every bad file a specific error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from unet_edge import io
from unet_edge.errors import ImageReadError
from unet_edge.imagemeta import Calibration


def test_reads_real_png_and_keeps_dtype(isbi: Path, tmp_path: Path) -> None:
    img = io.read_image(isbi / "train" / "image" / "00.png")
    assert img.shape == (512, 512) and img.dtype == np.uint8
    for dtype in (np.uint16, np.float32):
        p = tmp_path / f"x_{np.dtype(dtype).name}.tif"
        tifffile.imwrite(p, img.astype(dtype))
        back = io.read_image(p)
        assert back.dtype == dtype and np.array_equal(back, img.astype(dtype))
    p16 = tmp_path / "x16.png"
    io.write_png(p16, img.astype(np.uint16) * 257)
    assert io.read_image(p16).dtype == np.uint16


def test_multipage_tiff_is_a_stack(tmp_path: Path) -> None:
    stack = np.random.default_rng(0).integers(0, 65535, (3, 20, 30), dtype=np.uint16)
    p = tmp_path / "stack.tif"
    tifffile.imwrite(p, stack, photometric="minisblack")
    assert np.array_equal(io.read_image(p), stack)


def test_read_file_gives_header_calibration_and_pixels_of_one_open(tmp_path: Path) -> None:
    cal = Calibration(0.25, 0.5, "µm", 2.0)
    stack = np.random.default_rng(1).integers(0, 255, (3, 20, 30), dtype=np.uint8)
    tif = io.write_tiff(tmp_path / "s.tif", stack, axes="ZYX", calibration=cal)
    png = io.write_png(tmp_path / "p.png", stack[0])
    for path, is_stack in ((tif, True), (png, False)):
        got = io.read_file(path)
        assert got.header == io.image_header(path) and got.is_stack is is_stack
        assert np.array_equal(got.pixels, io.read_image(path))
        assert got.calibration == io.read_calibration(path) == (cal if is_stack else None)
    assert io.image_header(tif).contiguous is False  # three pages: not one memory map
    with io.open_image(png) as opened:
        with pytest.raises(ImageReadError, match="not a TIFF"):
            _ = opened.tiff
        assert opened.calibration() is None and opened.pixels().shape == (20, 30)
    with pytest.raises(ImageReadError, match="changed since its header was checked"):
        io.read_file(png, expect=io.image_header(tif))


def test_mixed_size_stack_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "mixed.tif"
    with tifffile.TiffWriter(p) as tw:
        tw.write(np.zeros((10, 12), np.uint16))
        tw.write(np.zeros((11, 12), np.uint16))
    with pytest.raises(ImageReadError, match="different sizes"):
        io.read_image(p)


def test_colour_png_is_rgb(tmp_path: Path) -> None:
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 200  # red
    p = tmp_path / "red.png"
    io.write_png(p, rgb)
    assert np.array_equal(io.read_image(p), rgb)


@pytest.fixture()
def png_bytes(isbi: Path) -> bytes:
    return (isbi / "train" / "image" / "01.png").read_bytes()


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("missing.png", None, "does not exist"),
        ("empty.png", b"", "empty"),
        ("text.png", b"this is not an image\n", "not a PNG"),
        ("truncated.png", "half", "truncated"),
        ("image.gif", b"GIF89a", "supported images"),
        ("bad.tif", b"II*\x00garbage", "not a readable TIFF"),
    ],
)
def test_bad_files(
    tmp_path: Path, png_bytes: bytes, name: str, content: object, match: str
) -> None:
    p = tmp_path / name
    if content == "half":
        p.write_bytes(png_bytes[: len(png_bytes) // 2])
    elif isinstance(content, bytes):
        p.write_bytes(content)
    with pytest.raises(ImageReadError, match=match):
        io.read_image(p)
