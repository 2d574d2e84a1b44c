"""Reading image files: each one opened once, its header checked before any pixel is decoded.

:func:`open_image` is how an input is opened: one file handle, on which the
magic bytes, the header (for a TIFF every page its directory chain declares,
with its pixel data inside the file) and the pixel limit are checked, and from
which the calibration and the pixels then come. Pixels keep their type
(8-bit, 16-bit, float32). PNG, JPEG and BMP are decoded by OpenCV (colour
returned as RGB), TIFF by tifffile (multi-page files as a (Z, H, W[, C])
stack).

A caller that checked the header earlier (a batch checks every input before
computing any) hands that header back as ``expect``: the second open is the
only other one, and refuses a file that has changed since.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import cv2
import numpy as np
import tifffile

from .. import imagemeta
from ..capture import captured
from ..errors import ImageReadError
from ..imagemeta import Calibration, Interval
from . import headers
from .headers import TIFF_SUFFIXES, ImageHeader

_T = TypeVar("_T")


class OpenImage:
    """An image file open for reading, its header checked (made by :func:`open_image`).

    Its calibration and its pixels come from this one open; close it (or use it
    as a context manager) when done.
    """

    def __init__(
        self,
        header: ImageHeader,
        file: BinaryIO,
        tiff: tifffile.TiffFile | None,
        resources: contextlib.ExitStack,
    ) -> None:
        self.header = header
        self.path = header.path
        self.file = file
        self._tiff = tiff
        self._resources = resources
        self._calibration: tuple[Calibration | None, str | None] | None = None

    @property
    def tiff(self) -> tifffile.TiffFile:
        """The parsed TIFF; :class:`ImageReadError` for another kind of image."""
        if self._tiff is None:
            raise ImageReadError(f"{self.path} is not a TIFF")
        return self._tiff

    def calibration(self) -> Calibration | None:
        """The pixel size (TIFF: OME-XML, ImageJ metadata or resolution tags,
        :func:`unet_edge.imagemeta.calibration_and_note`); None when the file has none,
        or states one that is not taken (:meth:`calibration_note` says why)."""
        return self._calibration_and_note()[0]

    def calibration_note(self) -> str | None:
        """Why the pixel size the file states was dropped (all of it, or its slice
        spacing): a unit off the allow-list, a size out of range; None if nothing was."""
        return self._calibration_and_note()[1]

    def interval(self) -> Interval | None:
        """The time interval the file states, with or without a pixel size
        (:func:`unet_edge.imagemeta.interval_of`); None when it states none or one not taken."""
        if self._tiff is None:
            return None
        try:
            return imagemeta.interval_of(self._tiff)
        except Exception as e:
            raise headers.not_tiff(self.path, e) from None

    def _calibration_and_note(self) -> tuple[Calibration | None, str | None]:
        if self._tiff is None:
            return None, None
        if self._calibration is None:  # read once per open
            try:
                self._calibration = imagemeta.calibration_and_note(self._tiff)
            except Exception as e:
                raise headers.not_tiff(self.path, e) from None
        return self._calibration

    def pixels(self) -> np.ndarray:
        """The pixels, type unchanged: (H, W), (H, W, C) RGB(A), or (Z, H, W[, C]) for a
        multi-page TIFF (every page the file declares)."""
        if self._tiff is None:
            self.file.seek(0)
            return _decode(self.path, np.frombuffer(self.file.read(), np.uint8))
        try:
            arr = np.asarray(self._tiff.asarray())
        except Exception as e:
            raise headers.not_tiff(self.path, e) from None
        if arr.ndim < 2 or 0 in arr.shape:
            raise ImageReadError(
                f"{self.path} is not a readable TIFF: it holds no image data (array of shape "
                f"{arr.shape}); it may be truncated or damaged"
            )
        return arr

    def close(self) -> None:
        """Close the file (idempotent)."""
        self._resources.close()

    def __enter__(self) -> OpenImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_image(
    path: str | os.PathLike[str],
    *,
    max_pixels: int | None = None,
    expect: ImageHeader | None = None,
) -> OpenImage:
    """Open an image file once and check its header, without decoding any pixel.

    Raises :class:`ImageReadError` for a file that is missing, not an image,
    truncated, a TIFF with a damaged page, one with more than ``max_pixels``
    pixels per plane (None: :data:`unet_edge.io.MAX_PIXELS`; 0: no limit), or,
    given the header read when it was checked earlier (``expect``), a file whose
    header is no longer that one.
    """
    path = Path(path)
    suffix = headers.check_name(path)
    resources = contextlib.ExitStack()  # handed to the OpenImage, or closed here on failure
    try:
        file: BinaryIO = resources.enter_context(open(path, "rb"))  # noqa: SIM115 (ExitStack)
        headers.check_magic(path, suffix, file.read(8))
        tiff = None
        if suffix in TIFF_SUFFIXES:
            tiff = resources.enter_context(_parse_tiff(path, file))
            header = headers.tiff_header(path, tiff)
        else:
            header = headers.opencv_header(path, suffix, file)
        headers.check_pixels(header, max_pixels)
        if expect is not None:
            _check_unchanged(header, expect)
    except BaseException:
        resources.close()
        raise
    return OpenImage(header, file, tiff, resources)


def _parse_tiff(path: Path, file: BinaryIO) -> tifffile.TiffFile:
    """tifffile's parse of the TIFF open as ``file``, held to every page the file declares."""
    pages = headers.tiff_page_count(path, file)
    file.seek(0)  # tifffile takes the file to start where the handle stands
    try:
        tf = tifffile.TiffFile(file)
    except Exception as e:
        raise headers.not_tiff(path, e) from None
    try:
        headers.check_tiff(path, tf, pages, os.fstat(file.fileno()).st_size)
    except BaseException:
        tf.close()
        raise
    return tf


def _check_unchanged(header: ImageHeader, expect: ImageHeader) -> None:
    """Refuse a file whose header is not the one a plan was made from."""
    if dataclasses.replace(expect, path=header.path) != header:
        raise ImageReadError(
            f"{header.path} changed since its header was checked (it was {_described(expect)}, "
            f"it is now {_described(header)}); segment it again"
        )


def _described(header: ImageHeader) -> str:
    """A header for people: ``512 x 512 YX uint8``."""
    return f"{' x '.join(map(str, header.shape))} {header.axes} {header.dtype}"


def _decode(path: Path, data: np.ndarray) -> np.ndarray:
    """Decode a PNG/JPEG/BMP with OpenCV; the decoder's own messages become our error."""
    kind = path.suffix[1:].upper()
    # OpenCV reports a truncated PNG on stderr and may return a partial image; check
    # the end ourselves so a damaged file is an error, not a half-black frame.
    if kind == "PNG" and not _png_complete(data):
        raise ImageReadError(f"{path} is a truncated or damaged PNG (no IEND chunk); re-copy it")
    with captured((2,), python=False) as said:
        decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    why = " ".join(said.text.split())
    if "OpenCV(" in why:  # "[ERROR:0@0.1] global loadsave.cpp ... error: (-2:...) What"
        why = why.rsplit(") ", 1)[-1]
    why = why[:200]
    if decoded is None or "Corrupt JPEG data" in why or "Premature end" in why:
        raise ImageReadError(
            f"{path} could not be decoded as {kind}"
            f"{f' ({why})' if why else ''}; it may be damaged, re-copy it"
        )
    if decoded.ndim == 3:
        code = cv2.COLOR_BGRA2RGBA if decoded.shape[2] == 4 else cv2.COLOR_BGR2RGB
        decoded = cv2.cvtColor(decoded, code)
    return np.asarray(decoded)


def _png_complete(data: np.ndarray) -> bool:
    """Whether the PNG bytes ``data`` end with an IEND chunk."""
    tail = data[-12:].tobytes()
    return len(data) >= 12 and tail[4:8] == b"IEND"


@dataclass(frozen=True, eq=False)
class Image:
    """One image file read whole (:func:`read_file`), from one open.

    ``pixels`` as :meth:`OpenImage.pixels` gives them ((H, W), (H, W, C) RGB(A) or
    (Z, H, W[, C]), type unchanged), ``header`` what the file's header says,
    ``calibration`` its pixel size (None if it has none or states one that is not
    taken), ``calibration_note`` why what it states was dropped (None if nothing was),
    ``interval`` the time interval it states, pixel size or not (:meth:`OpenImage.interval`).
    """

    header: ImageHeader
    pixels: np.ndarray
    calibration: Calibration | None
    calibration_note: str | None = None
    interval: Interval | None = None

    @property
    def is_stack(self) -> bool:
        """A stack of frames (a multi-page TIFF), not one frame (:attr:`ImageHeader.is_stack`)."""
        return self.header.is_stack


def read_file(
    path: str | os.PathLike[str],
    *,
    max_pixels: int | None = None,
    expect: ImageHeader | None = None,
) -> Image:
    """The header, pixels and calibration of an image file, from one open.

    The header is checked first (:func:`open_image`, ``max_pixels`` and
    ``expect`` as there). Raises :class:`ImageReadError` for missing, empty,
    truncated, damaged or mislabelled files.
    """
    with open_image(path, max_pixels=max_pixels, expect=expect) as image:
        pixels = image.pixels()
        cal, note = image.calibration(), image.calibration_note()
        return Image(image.header, pixels, cal, note, image.interval())


def image_header(path: str | os.PathLike[str], *, max_pixels: int | None = None) -> ImageHeader:
    """The shape, dtype and axes of an image file, from its header alone (the checks
    of :func:`open_image`)."""
    with open_image(path, max_pixels=max_pixels) as image:
        return image.header


def read_image(path: str | os.PathLike[str], *, max_pixels: int | None = None) -> np.ndarray:
    """Read an image with its pixel type unchanged.

    Returns (H, W) for grayscale, (H, W, C) RGB(A) for colour, and (Z, H, W)
    or (Z, H, W, C) for multi-page TIFF stacks (every page the file declares,
    or an error naming the page that cannot be read). The header is checked
    first (:func:`open_image`, ``max_pixels`` as there). Raises
    :class:`ImageReadError` for missing, empty, truncated, damaged or
    mislabelled files.
    """
    with open_image(path, max_pixels=max_pixels) as image:
        return image.pixels()


def is_stack(path: str | os.PathLike[str]) -> bool:
    """Whether a file holds a stack of frames (Z, H, W[, C]) rather than one frame.

    Only TIFF files can: their first series has a leading axis that is neither
    a spatial nor a sample (colour) axis, e.g. ``ZYX`` or ``IYX``.
    """
    path = Path(path)
    if path.suffix.lower() not in TIFF_SUFFIXES:
        return False
    return image_header(path, max_pixels=0).is_stack


def read_tiff_lazy(path: str | os.PathLike[str]) -> np.ndarray:
    """A read-only memory map of an uncompressed TIFF (for images larger than memory)."""
    path = Path(path)
    image_header(path)
    try:
        return np.asarray(tifffile.memmap(path, mode="r"))
    except Exception as e:
        raise ImageReadError(
            f"{path} cannot be memory-mapped ({e}); large-image mode needs an uncompressed TIFF"
        ) from None


def read_calibration(path: str | os.PathLike[str]) -> Calibration | None:
    """The pixel size of an image file (TIFF: OME-XML, ImageJ metadata or resolution
    tags, :func:`unet_edge.imagemeta.calibration_of`); None when it has none."""
    path = Path(path)
    if path.suffix.lower() not in TIFF_SUFFIXES:
        return None
    return _tiff_metadata(path, imagemeta.calibration_of)


def read_provenance(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The provenance dictionary unet-edge wrote into an output ({} if there is none):
    a TIFF's ImageJ ``Info`` property, OME MapAnnotation or JSON ImageDescription, or a
    PNG's text chunk."""
    path = Path(path)
    if path.suffix.lower() == ".png":
        text = imagemeta.png_text(path.read_bytes()).get(imagemeta.PROVENANCE_KEY)
        return imagemeta.first_json_dict([text])
    return _tiff_metadata(path, imagemeta.provenance_of)


def _tiff_metadata(path: Path, read: Callable[[tifffile.TiffFile], _T]) -> _T:
    """``read`` applied to the TIFF ``path``, opened once; ImageReadError if it is not one.

    Metadata only: the pages are not walked (an output's metadata is readable
    even where its pixels would not be).
    """
    suffix = headers.check_name(path)
    with open(path, "rb") as file:
        headers.check_magic(path, suffix, file.read(8))
        file.seek(0)
        try:
            with tifffile.TiffFile(file) as tf:
                return read(tf)
        except Exception as e:
            raise headers.not_tiff(path, e) from None
