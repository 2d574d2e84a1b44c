"""What an image file's header says, parsed from a file that is already open.

Nothing here opens a file (:func:`unet_edge.io.read.open_image` does, once):
the checks a path allows before it is opened (:func:`check_name`), the magic
bytes per suffix, :class:`ImageHeader`, the PNG, JPEG and BMP header parsers,
and for TIFFs the walk of the directory chain (:func:`tiff_page_count`: every
page the file declares) and the checks tifffile's parse is held to
(:func:`check_tiff`: no page dropped, pixel data inside the file). No image
may have more than :data:`MAX_PIXELS` pixels per plane (a decompression bomb,
or a header that lies).
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import tifffile

from ..errors import ImageReadError
from .axes import channel_names

OPENCV_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}
TIFF_SUFFIXES = {".tif", ".tiff"}
SUFFIXES = OPENCV_SUFFIXES | TIFF_SUFFIXES

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_MAGIC = {
    ".png": (b"\x89PNG\r\n\x1a\n",),
    ".jpg": (b"\xff\xd8\xff",),
    ".jpeg": (b"\xff\xd8\xff",),
    ".bmp": (b"BM",),
    ".tif": _TIFF_MAGIC,
    ".tiff": _TIFF_MAGIC,
}

#: Most pixels one image plane may have (None: no limit), checked from the header before
#: decoding, like Pillow's ``MAX_IMAGE_PIXELS``. A gigapixel (10^9) is 2.5x the 20000 x 20000
#: mosaics segmented window by window (about 15 minutes of the shipped model on 2 cores),
#: and far below what a lying or bomb header claims (200000 x 200000 is 40 gigapixels).
#: Raise it per call (``max_pixels=``) or as ``unet_edge.io.MAX_PIXELS`` for the whole process.
MAX_PIXELS: int | None = 10**9


@dataclass(frozen=True)
class ImageHeader:
    """What a file's header says, read without decoding any pixel.

    ``shape`` as :func:`unet_edge.io.read_image` would return it ((H, W),
    (H, W, C), (Z, H, W[, C])), ``axes`` one letter per axis (``Y``, ``X``,
    ``S`` for colour samples, ``C`` channels, ``T`` time, ``Z`` depth, anything
    else a stack axis: as the file's OME or ImageJ metadata says, see
    :mod:`unet_edge.io.axes`), ``dtype`` the pixel type. ``contiguous``: a
    single-page TIFF whose pixels lie uncompressed in one run of bytes, so that
    its windows can be memory-mapped. ``channel_names``: the names of the ``C``
    axis' channels (OME ``Channel Name``, ImageJ slice labels), () if unnamed.
    """

    path: Path
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    axes: str
    contiguous: bool = False
    channel_names: tuple[str, ...] = ()

    @property
    def plane_pixels(self) -> int:
        """Pixels of one plane (H * W)."""
        return math.prod(n for n, a in zip(self.shape, self.axes, strict=True) if a in "YX")

    @property
    def frames(self) -> int:
        """Number of planes (1 for a single image)."""
        return math.prod(n for n, a in zip(self.shape, self.axes, strict=True) if a not in "YXS")

    @property
    def is_stack(self) -> bool:
        """A stack of frames (Z, H, W[, C]): a leading axis that is neither spatial nor colour."""
        return len(self.shape) >= 3 and self.axes[0] not in "YXS"

    @property
    def channels(self) -> int:
        """Colour samples per pixel (1 for grayscale)."""
        return math.prod(n for n, a in zip(self.shape, self.axes, strict=True) if a == "S")


def check_name(path: Path) -> str:
    """The lower-case suffix of ``path`` once it names a non-empty file of a supported kind.

    Only the file system's entry is looked at (the file is not opened).
    Raises :class:`ImageReadError` for a missing file, a folder, an unsupported
    suffix or an empty file.
    """
    suffix = path.suffix.lower()
    if not path.exists():
        raise ImageReadError(f"input {path} does not exist")
    if path.is_dir():
        raise ImageReadError(f"input {path} is a folder, expected an image file")
    if suffix not in SUFFIXES:
        raise ImageReadError(
            f"{path} has suffix {path.suffix!r}; supported images are {', '.join(sorted(SUFFIXES))}"
        )
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path} is empty (0 bytes); re-export or re-copy the image")
    return suffix


def check_magic(path: Path, suffix: str, head: bytes) -> None:
    """Refuse a file whose first bytes ``head`` are not those of its ``suffix``'s format."""
    if not head.startswith(_MAGIC[suffix]):
        raise ImageReadError(
            f"{path} is not a {suffix[1:].upper()} file (its first bytes are {head[:8]!r}); "
            "check the file or give it the right suffix"
        )


def check_pixels(header: ImageHeader, max_pixels: int | None) -> None:
    """Refuse a header with more than ``max_pixels`` pixels per plane (None:
    :data:`MAX_PIXELS`, read now, so a process-wide change applies; 0: no limit)."""
    limit = MAX_PIXELS if max_pixels is None else (max_pixels or None)
    if limit is not None and header.plane_pixels > limit:
        h, w = (n for n, a in zip(header.shape, header.axes, strict=True) if a in "YX")
        raise ImageReadError(
            f"{header.path} declares {w} x {h} = {_pixels(header.plane_pixels)} per image, more "
            f"than the limit of {_pixels(limit)} against damaged or malicious files; raise the "
            "limit if the image is real",
            option="max_pixels",
        )


def _pixels(n: int) -> str:
    """A pixel count for people: 12 pixels, 40000 megapixels."""
    return f"{n / 1e6:.0f} megapixels" if n >= 10**7 else f"{n} pixels"


def opencv_header(path: Path, suffix: str, f: BinaryIO) -> ImageHeader:
    """Width, height, channels and depth of the PNG, JPEG or BMP open as ``f``, from its
    header bytes (read from the start of the file)."""
    dtype: np.dtype[Any] = np.dtype(np.uint8)
    try:
        f.seek(0)
        if suffix == ".jpg" or suffix == ".jpeg":
            h, w, channels = _jpeg_size(f)
        elif suffix == ".png":
            w, h, depth, colour = struct.unpack(">IIBB", f.read(26)[16:26])
            channels = {0: 1, 2: 3, 3: 3, 4: 4, 6: 4}.get(colour, 4)
            dtype = np.dtype(np.uint16) if depth == 16 else dtype
        else:
            w, h, _, bits = struct.unpack("<iiHH", f.read(30)[18:30])
            h, channels = abs(h), {8: 1, 32: 4}.get(bits, 3)
    except (struct.error, IndexError, ValueError):
        raise ImageReadError(
            f"{path} is a truncated or damaged {suffix[1:].upper()}: its header cannot be read"
        ) from None
    if w < 1 or h < 1:
        raise ImageReadError(f"{path} declares an empty image ({w} x {h}); it is damaged")
    shape = (h, w) if channels == 1 else (h, w, channels)
    return ImageHeader(path, shape, dtype, "YX" if channels == 1 else "YXS")


def _jpeg_size(f: BinaryIO) -> tuple[int, int, int]:
    """Height, width and components from a JPEG's first start-of-frame marker, skipping
    the segments before it (EXIF, ICC profiles: they can be long) without reading them."""
    f.seek(2)
    while True:
        byte = f.read(1)
        if byte != b"\xff":
            if not byte:
                raise ValueError("no start-of-frame marker before the end of the file")
            continue
        marker = f.read(1)[0]  # IndexError at the end of the file
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            _, _, h, w, components = struct.unpack(">HBHHB", f.read(8))
            return h, w, 1 if components == 1 else 3
        if marker in (0xD9, 0xDA):  # end of image, or scan data, before any frame
            raise ValueError("no start-of-frame marker")
        if marker not in (0x01, 0xD8, 0xFF) and not 0xD0 <= marker <= 0xD7:
            f.seek(struct.unpack(">H", f.read(2))[0] - 2, 1)
        elif marker == 0xFF:
            f.seek(-1, 1)  # a fill byte: the next one may start the marker


def not_tiff(path: Path, e: BaseException) -> ImageReadError:
    """The error for a TIFF that tifffile cannot parse or read, with tifffile's reason."""
    return ImageReadError(f"{path} is not a readable TIFF ({type(e).__name__}: {e})")


def page_error(path: Path, page: int, why: str) -> ImageReadError:
    """The error for a TIFF whose page ``page`` (counted from 1) cannot be read."""
    return ImageReadError(
        f"{path} is not a readable TIFF: page {page} (index {page - 1}) cannot be read ({why}); "
        "pages are never dropped, re-copy or re-export the file"
    )


def tiff_page_count(path: Path, f: BinaryIO) -> int:
    """Walk the chain of image directories (IFDs) of the TIFF open as ``f``: how many
    pages the file declares.

    A directory that points outside the file, is cut short, holds an absurd number
    of tags, or loops back is an error naming its page (tifffile would log it and
    return the pages before it).
    """
    size = os.fstat(f.fileno()).st_size
    f.seek(0)
    head = f.read(16)
    order = "<" if head[:2] == b"II" else ">"
    big = head[2:4] in (b"+\x00", b"\x00+")
    off, count, entry = ("Q", "Q", 20) if big else ("I", "H", 12)
    try:
        offset = struct.unpack(order + off, head[8:16] if big else head[4:8])[0]
    except struct.error:
        raise not_tiff(path, EOFError("the header is cut short")) from None
    n_size, off_size = struct.calcsize(count), struct.calcsize(off)
    seen: set[int] = set()
    while offset:
        page = len(seen) + 1
        if offset in seen:
            raise page_error(path, page, f"its directory loops back to byte {offset}")
        f.seek(offset)
        raw = f.read(n_size)
        n = struct.unpack(order + count, raw)[0] if len(raw) == n_size else 0
        end = offset + n_size + n * entry + off_size
        if not 0 < n <= 4096 or end > size:
            why = f"its directory at byte {offset} is damaged or beyond the {size}-byte file"
            raise page_error(path, page, why)
        seen.add(offset)
        f.seek(end - off_size)
        offset = struct.unpack(order + off, f.read(off_size))[0]
    return len(seen)


def check_tiff(path: Path, tf: tifffile.TiffFile, pages: int, size: int) -> None:
    """Refuse a parsed TIFF that would not give every one of its ``pages`` (the count
    :func:`tiff_page_count` walked) from the ``size`` bytes of the file."""
    try:
        read = len(tf.pages)
        shapes = [tuple(s.shape) for s in tf.series]
    except Exception as e:
        raise not_tiff(path, e) from None
    if read < pages:
        raise page_error(path, read + 1, f"the file declares {pages} pages, tifffile parsed {read}")
    if len(shapes) > 1:
        # tifffile would return the first series alone: never drop pages silently.
        raise ImageReadError(
            f"{path} is a stack with pages of different sizes {shapes[:4]}"
            f"{' ...' if len(shapes) > 4 else ''}; split it into one file per size"
        )
    covered = math.prod(shapes[0]) // max(1, math.prod(tf.pages.first.shape))
    if covered < pages:  # metadata (ImageJ's images=N, a shape) describing fewer pages
        why = f"the file declares {pages} pages, its metadata describes {covered}"
        raise page_error(path, covered + 1, why)
    _check_extent(path, tf, pages, size)


def _check_extent(path: Path, tf: tifffile.TiffFile, pages: int, size: int) -> None:
    """Refuse a TIFF whose first or last page's pixel data lies beyond the end of the file."""
    for index in sorted({0, pages - 1}):
        try:
            page = tf.pages[index]
            offsets = np.asarray(page.dataoffsets, np.int64)
            counts = np.asarray(page.databytecounts, np.int64)
            need = int(page.nbytes) if int(page.compression) == 1 else 0
        except Exception as e:
            raise page_error(path, index + 1, f"{type(e).__name__}: {e}") from None
        ends = int((offsets + counts).max()) if len(offsets) else 0
        if len(offsets) == 0 or ends > size or int(counts.sum()) < need:
            raise ImageReadError(
                f"{path} is truncated or its header lies: page {index + 1} declares "
                f"{max(ends, need)} bytes of pixel data but the file has {size} bytes; re-copy it"
            )


def tiff_header(path: Path, tf: tifffile.TiffFile) -> ImageHeader:
    """The header of a parsed TIFF (its one series, :func:`check_tiff`)."""
    try:
        series = tf.series[0]
        contiguous = bool(tf.pages.first.is_contiguous) and len(tf.pages) == 1
    except Exception as e:
        raise not_tiff(path, e) from None
    shape = tuple(int(n) for n in series.shape)
    names = channel_names(tf, series.axes, shape)
    return ImageHeader(path, shape, np.dtype(series.dtype), series.axes, contiguous, names)
