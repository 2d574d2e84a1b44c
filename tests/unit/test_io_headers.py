"""Image headers (unet_edge/io/headers.py): size, dtype and axes from the header bytes alone,
the checks made before a file is opened, magic bytes, the pixel limit, the TIFF page walk."""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from unet_edge import io
from unet_edge.errors import ImageReadError
from unet_edge.io import headers
from unet_edge.io.headers import ImageHeader


@pytest.mark.parametrize(
    ("suffix", "image", "shape", "dtype"),
    [
        (".png", np.zeros((7, 9), np.uint8), (7, 9), np.uint8),
        (".png", np.zeros((7, 9), np.uint16), (7, 9), np.uint16),
        (".png", np.zeros((7, 9, 3), np.uint8), (7, 9, 3), np.uint8),
        (".jpg", np.zeros((7, 9), np.uint8), (7, 9), np.uint8),
        (".jpg", np.zeros((7, 9, 3), np.uint8), (7, 9, 3), np.uint8),
        (".bmp", np.zeros((7, 9), np.uint8), (7, 9), np.uint8),
        (".bmp", np.zeros((7, 9, 3), np.uint8), (7, 9, 3), np.uint8),
    ],
)
def test_opencv_headers_from_their_bytes(
    tmp_path: Path, suffix: str, image: np.ndarray, shape: tuple[int, ...], dtype: type
) -> None:
    path = tmp_path / f"x{suffix}"
    assert cv2.imwrite(str(path), image)
    with path.open("rb") as f:
        header = headers.opencv_header(path, suffix, f)
    assert header.shape == shape and header.dtype == dtype
    assert header.axes == ("YX" if len(shape) == 2 else "YXS")
    assert header.channels == (1 if len(shape) == 2 else 3)
    assert header.plane_pixels == 63 and header.frames == 1 and not header.is_stack
    assert io.read_image(path).shape == shape  # what reading gives, as the header said


def test_a_jpeg_with_a_long_segment_before_its_frame(tmp_path: Path) -> None:
    ok, buf = cv2.imencode(".jpg", np.zeros((5, 11), np.uint8))
    assert ok
    data = buf.tobytes()
    comment = b"\xff\xfe" + struct.pack(">H", 2 + 70000 // 2) + b"c" * (70000 // 2)
    path = tmp_path / "commented.jpg"
    path.write_bytes(data[:2] + comment + data[2:])  # a COM segment right after SOI
    with path.open("rb") as f:
        assert headers.opencv_header(path, ".jpg", f).shape == (5, 11)


def test_a_damaged_header_is_an_image_read_error(tmp_path: Path) -> None:
    path = tmp_path / "short.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    with path.open("rb") as f, pytest.raises(ImageReadError, match="truncated or damaged PNG"):
        headers.opencv_header(path, ".png", f)
    zero = tmp_path / "zero.png"
    zero.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 8 + struct.pack(">IIBB", 0, 5, 8, 0))
    with zero.open("rb") as f, pytest.raises(ImageReadError, match=r"empty image \(0 x 5\)"):
        headers.opencv_header(zero, ".png", f)


def test_check_name_looks_at_the_entry_only(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="does not exist"):
        headers.check_name(tmp_path / "none.png")
    with pytest.raises(ImageReadError, match="is a folder"):
        headers.check_name(tmp_path)
    (tmp_path / "x.gif").write_bytes(b"GIF89a")
    with pytest.raises(ImageReadError, match=r"suffix '\.gif'; supported images are \.bmp"):
        headers.check_name(tmp_path / "x.gif")
    (tmp_path / "e.TIF").write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"empty \(0 bytes\)"):
        headers.check_name(tmp_path / "e.TIF")
    (tmp_path / "X.TIFF").write_bytes(b"not even a tiff")  # the content is not read here
    assert headers.check_name(tmp_path / "X.TIFF") == ".tiff"


def test_magic_bytes_must_match_the_suffix(tmp_path: Path) -> None:
    for head in (b"II*\x00rest", b"MM\x00*rest", b"II+\x00rest", b"MM\x00+rest"):
        headers.check_magic(tmp_path / "x.tif", ".tif", head)  # classic and BigTIFF, both orders
    with pytest.raises(ImageReadError, match=r"x\.png is not a PNG file .*b'II\*\\x00"):
        headers.check_magic(tmp_path / "x.png", ".png", b"II*\x00rest")
    with pytest.raises(ImageReadError, match="not a JPEG file"):
        headers.check_magic(tmp_path / "x.jpeg", ".jpeg", b"\x89PNG\r\n\x1a\n")


def test_the_pixel_limit_per_plane(monkeypatch: pytest.MonkeyPatch) -> None:
    stack = ImageHeader(Path("s.tif"), (50, 100, 200), np.dtype(np.uint16), "ZYX")
    assert stack.plane_pixels == 20_000 and stack.frames == 50 and stack.is_stack
    headers.check_pixels(stack, 20_000)  # the limit is per plane, not per file
    headers.check_pixels(stack, 0)  # 0: no limit
    with pytest.raises(ImageReadError, match="200 x 100 = 20000 pixels per image") as e:
        headers.check_pixels(stack, 19_999)
    assert e.value.option == "max_pixels" and "raise the limit" in str(e.value)
    monkeypatch.setattr(headers, "MAX_PIXELS", 10**7)  # read when checked, not when imported
    huge = ImageHeader(Path("h.tif"), (20_000, 20_000), np.dtype(np.uint8), "YX")
    with pytest.raises(ImageReadError, match="400 megapixels per image, more than the limit of 10"):
        headers.check_pixels(huge, None)


def test_the_page_walk_counts_every_declared_page(tmp_path: Path) -> None:
    path = tmp_path / "pages.tif"
    with tifffile.TiffWriter(path) as tw:
        for k in range(4):
            tw.write(np.full((6, 5), k, np.uint8))
    with path.open("rb") as f:
        assert headers.tiff_page_count(path, f) == 4
    with tifffile.TiffFile(path) as tf:
        first, last = tf.pages[0].offset, tf.pages[-1].offset
    data = bytearray(path.read_bytes())
    (n,) = struct.unpack_from("<H", data, last)
    pointer = last + 2 + 12 * n  # where the last directory names the next one (0: none)
    for target, why in ((first, "page 5 .*loops back to byte"), (10**6, "page 5 .*beyond the")):
        struct.pack_into("<I", data, pointer, target)
        bad = tmp_path / "bad.tif"
        bad.write_bytes(bytes(data))
        with bad.open("rb") as f, pytest.raises(ImageReadError, match=why):
            headers.tiff_page_count(bad, f)
