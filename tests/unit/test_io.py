"""Image I/O: dtypes kept, every bad file a specific error, writes atomic."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tifffile

from unet_edge import io
from unet_edge.errors import ImageReadError, InputError, OutputError, OutputExistsError
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


def test_collect_inputs(tmp_path: Path) -> None:
    for n in ("b.png", "a.tif", "notes.txt"):
        (tmp_path / n).write_bytes(b"x")
    assert [p.name for p in io.collect_inputs([tmp_path])] == ["a.tif", "b.png"]
    assert [p.name for p in io.collect_inputs([str(tmp_path / "*.png")])] == ["b.png"]
    with pytest.raises(InputError, match="matches no files"):
        io.collect_inputs([str(tmp_path / "*.jpg")])
    with pytest.raises(ImageReadError, match="does not exist"):
        io.collect_inputs([tmp_path / "nope.png"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no images"):
        io.collect_inputs([empty])


def test_check_output(tmp_path: Path) -> None:
    src = tmp_path / "in.png"
    src.write_bytes(b"x")
    with pytest.raises(OutputExistsError, match="one of the inputs"):
        io.check_output(src, overwrite=True, inputs=[src])
    with pytest.raises(OutputExistsError, match="overwriting was not asked for") as e:
        io.check_output(src, overwrite=False)
    assert e.value.option == "overwrite"  # the CLI turns it into "pass --overwrite"
    with pytest.raises(OutputError, match="does not exist"):
        io.check_output(tmp_path / "nofolder" / "x.png", overwrite=False)


def test_atomic_write_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "out.tif"
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("crash mid-write")
    assert os.listdir(tmp_path) == []


def test_folder_removed_mid_write(tmp_path: Path) -> None:
    folder = tmp_path / "vanishing"
    folder.mkdir()
    with pytest.raises(OutputError, match="disappeared"), io.atomic_path(folder / "m.png") as tmp:
        tmp.write_bytes(b"x")
        tmp.unlink()
        folder.rmdir()
    assert not folder.exists()


def test_tiff_provenance_round_trip(tmp_path: Path) -> None:
    p = io.write_tiff(tmp_path / "m.tif", np.zeros((3, 3), np.uint8), {"model_sha256": "ab"})
    assert io.read_provenance(p) == {"model_sha256": "ab"}


def test_written_files_are_readable_by_others(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        p = io.write_png(tmp_path / "m.png", np.zeros((3, 3), np.uint8))
    finally:
        os.umask(old)
    assert p.stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600
    assert [q.name for q in tmp_path.iterdir()] == ["m.png"]
