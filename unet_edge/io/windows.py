"""TIFFs larger than memory: windows of one image read on demand, a mask written strip by strip.

:class:`TiffWindows` reads any rectangle of a single-image TIFF (the window
reader of the kernel, :data:`unet_edge.tiling.WindowReader`, and an array
Dask can wrap); :func:`write_tiff_strips` writes a uint8 image from bands of
rows as they come, so neither side ever holds the whole image.
"""

from __future__ import annotations

import os
import threading
import warnings
import weakref
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from .. import imagemeta
from ..errors import ImageReadError, InputError, OutputError
from ..imagemeta import Calibration
from .atomic import write_atomically
from .headers import TIFF_SUFFIXES, ImageHeader
from .read import OpenImage, open_image
from .write import imagej_uint32


class TiffWindows:
    """Random access to windows of a large single-image TIFF, without reading all of it.

    The file is opened once (:func:`unet_edge.io.read.open_image`: its header
    checked, ``max_pixels`` and ``expect`` as there) and stays open until
    :meth:`close` (or the end of a ``with`` block); a read after that, or in
    another process (it pickles, for Dask workers), opens it again and checks
    that it has not changed. An uncompressed, contiguous TIFF is read through a
    memory map of just the rows a window needs, unmapped after each read, so
    resident memory stays the size of a window however large the file is.
    Other TIFFs (compressed, tiled) are read through tifffile's zarr store,
    which decodes only the chunks a window touches (needs the ``[dask]`` extra
    for zarr).

    ``shape`` is (H, W) or (H, W, C), ``dtype`` the file's pixel type,
    ``calibration`` its pixel size (None if it has none).

    ``channel`` reads one channel alone, shape (H, W): a colour sample of (H, W, S)
    pixels, or one plane of a (C, H, W) channel image (an ImageJ composite or OME
    ``CYX``; its other channels are never read). None reads every sample.

    ``grey`` (with no ``channel``; for a 1-channel model) reads RGB(A) stored grey as
    one (H, W) plane, as :func:`unet_edge.io.axes.arrange` takes it in memory: every
    window read is checked, its red, green and blue equal (an alpha ignored; grey and
    alpha gives the grey), and the first that is not raises
    :class:`~unet_edge.InputError` (``option="channel"``) naming it. Other images are
    read as they are.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_pixels: int | None = None,
        expect: ImageHeader | None = None,
        channel: int | None = None,
        grey: bool = False,
    ) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in TIFF_SUFFIXES:
            raise InputError(_not_tiff_message(self.path))
        self._max_pixels = max_pixels
        self._lock = threading.RLock()
        self._no_file()
        image = self._adopt(open_image(self.path, max_pixels=max_pixels, expect=expect))
        try:
            self.header = image.header
            self.check_header(self.header, channel)
            self.calibration: Calibration | None = image.calibration()
            self.calibration_note: str | None = image.calibration_note()  # what was dropped
            tf = image.tiff
            self._offset = int(tf.pages.first.dataoffsets[0]) if self.header.contiguous else -1
            self._byteorder = tf.byteorder
            self._pick_channel(channel, tf, grey)
            if self._offset < 0:
                self._open_zarr()
        except BaseException:
            self.close()
            raise
        self.dtype = self.header.dtype
        self.ndim = len(self.shape)

    def _pick_channel(self, channel: int | None, tf: tifffile.TiffFile, grey: bool) -> None:
        """Set ``shape``, ``channel``, ``grey`` and how a window reads the file: ``_plane``,
        the C index of a (C, H, W) file, ``_sample``, the S index of (H, W, S) pixels, and
        the memory-mapped plane's ``_offset`` (-1: read through zarr)."""
        axes, shape = self.header.axes, self.header.shape
        self._plane: int | None = None
        self._sample: int | None = None
        self._row_shape = shape[1:] if axes != "CYX" else shape[2:]  # one row in the file
        self.shape: tuple[int, ...] = shape
        self.channel = None if channel is None or _channels(self.header) == 1 else int(channel)
        self.grey = grey and self.channel is None and axes == "YXS"  # checked as it is read
        if self.grey:
            self.shape = shape[:2]
        if self.channel is None:
            return
        self.shape = tuple(n for n, a in zip(shape, axes, strict=True) if a in "YX")
        if axes.endswith("S"):
            self._sample = self.channel
            return
        self._plane = self.channel
        start = tf.series[0].dataoffset  # None unless every plane lies uncompressed in a row
        plane = int(np.prod(self.shape)) * self.header.dtype.itemsize
        self._offset = -1 if start is None else int(start) + self.channel * plane

    @staticmethod
    def check_header(header: ImageHeader, channel: int | None = None) -> None:
        """Refuse, from its header alone, a file that cannot be read window by window: not
        a TIFF, not one (H, W) or (H, W, C) image (or, with ``channel``, a (C, H, W) one
        that has that channel), or compressed or tiled without zarr."""
        path, shape = header.path, header.shape
        if path.suffix.lower() not in TIFF_SUFFIXES:
            raise InputError(_not_tiff_message(path))
        count = _channels(header)
        if channel is not None and not 0 <= channel < count:
            raise InputError(
                f"channel {channel} was picked, but {path} has {count} channel(s) (axes "
                f"{header.axes}, shape {shape}); pick one of 0..{count - 1}",
                option="channel",
            )
        planes = channel is not None and header.axes == "CYX"  # one plane of them is read
        if not planes and (len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] > 4)):
            raise InputError(
                f"{path} holds an array of shape {shape}; large-image mode takes one "
                "(H, W) or (H, W, C) image, not a stack (segment stacks slice by slice)"
            )
        # one plane of several may still be memory-mapped (the series' data in one run of
        # bytes, known once the file is open); else opening it asks for zarr the same way
        if not header.contiguous and not planes:
            _import_zarr(path)

    def _no_file(self) -> None:
        """The state without an open file (new, closed, or just unpickled)."""
        self._image: OpenImage | None = None
        self._release: Callable[[], object] = lambda: None
        self._zarr: Any = None

    def _adopt(self, image: OpenImage) -> OpenImage:
        """Hold ``image`` open as this object's file (closed by :meth:`close` or the GC)."""
        self._image = image
        # closed when this object goes, if close() was not called: no file left to the GC
        self._release = weakref.finalize(self, image.close)
        return image

    def _opened(self) -> OpenImage:
        """The open file, opened again (and checked unchanged) if it was closed."""
        with self._lock:
            image = self._image
            if image is None:  # closed, or unpickled in another process: open it once there
                image = self._adopt(
                    open_image(self.path, max_pixels=self._max_pixels, expect=self.header)
                )
            return image

    def _open_zarr(self) -> Any:
        """The zarr array over tifffile's store of the open file (compressed or tiled TIFFs)."""
        with self._lock:
            if self._zarr is None:
                zarr = _import_zarr(self.path)
                self._zarr = zarr.open(self._opened().tiff.aszarr(), mode="r")
            return self._zarr

    def close(self) -> None:
        """Close the file (idempotent); a later read opens it again."""
        with self._lock:
            release = self._release
            self._no_file()
        release()

    def __enter__(self) -> TiffWindows:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        # Picklable for Dask workers: each process opens the file itself.
        gone = ("_lock", "_image", "_release", "_zarr")
        return {k: v for k, v in self.__dict__.items() if k not in gone}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()
        self._no_file()

    def __getitem__(self, key: Any) -> np.ndarray:
        """``windows[r0:r1:s, c0:c1:s]``, so Dask can read it with ``from_array``.

        With steps (a statistics sample) only every ``s``-th row is read: one
        strided pass over the file, in bands, so memory stays bounded.
        """
        key = key if isinstance(key, tuple) else (key,)
        rows, cols = (*key, slice(None), slice(None))[:2]
        r0, r1, rs = rows.indices(self.shape[0])
        c0, c1, cs = cols.indices(self.shape[1])
        if rs < 1 or cs < 1:
            raise InputError("TiffWindows reads forward windows only (positive steps)")
        if rs == 1 and cs == 1:
            window = self.read((r0, max(r0, r1)), (c0, max(c0, c1)))
        else:
            window = self._strided(range(r0, r1, rs), slice(c0, c1, cs))
        return window[(slice(None), slice(None), *key[2:])]

    def _strided(self, rows: range, cols: slice) -> np.ndarray:
        """Every ``rows.step``-th row of ``rows``, columns ``cols``, read in bands of ~32 MiB."""
        row_bytes = int(np.prod(self._row_shape)) * self.dtype.itemsize  # a row as read
        band = max(1, (32 << 20) // max(1, row_bytes) // rows.step)
        parts = []
        for i in range(0, len(rows), band):
            sel = rows[i : i + band]
            if len(sel):
                block = self.read((sel[0], sel[-1] + 1), (0, self.shape[1]))
                # a copy: a view would keep every band's full rows alive until the end
                parts.append(np.ascontiguousarray(block[:: rows.step, cols]))
                del block
        return np.concatenate(parts) if parts else np.empty((0, 0, *self.shape[2:]), self.dtype)

    def read_window(self, top: int, left: int, height: int, width: int) -> np.ndarray:
        """The kernel's window reader (:data:`unet_edge.tiling.WindowReader`)."""
        return self.read((top, top + height), (left, left + width))

    def read(self, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
        """Pixels ``[r0, r1) x [c0, c1)`` as a fresh (h, w[, C]) array of the file's dtype."""
        try:
            window = self._read(rows, cols)
        except Exception as e:  # the file changed or was cut short after it was opened
            raise ImageReadError(
                f"{self.path}: rows {rows[0]}-{rows[1]}, columns {cols[0]}-{cols[1]} cannot be "
                f"read ({type(e).__name__}: {e}); the file may be truncated or damaged"
            ) from None
        return self._as_grey(window, rows, cols) if self.grey else window

    def _as_grey(self, window: np.ndarray, rows: tuple[int, int], cols: tuple[int, int]) -> Any:
        """The (h, w) grey of an (h, w, S) ``window`` whose colours are equal, or InputError."""
        grey = np.ascontiguousarray(window[..., 0])
        # grey and alpha is grey; an alpha after red, green and blue is ignored
        colours = 1 if window.shape[-1] == 2 else min(3, window.shape[-1])
        for c in range(1, colours):
            if not np.array_equal(grey, window[..., c]):
                wide = np.float64 if window.dtype.kind == "f" else np.int64
                spread = np.max(np.abs(window[..., c].astype(wide) - grey.astype(wide)))
                raise InputError(
                    f"{self.path} is a colour image: its red, green and blue differ in rows "
                    f"{rows[0]}-{rows[1]}, columns {cols[0]}-{cols[1]} (by up to {spread:g} "
                    "levels), but the model takes 1 channel; pick the colour channel to "
                    "segment (0: red, 1: green, 2: blue), or convert it to grey",
                    option="channel",
                )
        return grey

    def _read(self, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
        """:meth:`read` without the error translation: a memory map of the rows, or zarr."""
        (r0, r1), (c0, c1) = rows, cols
        sample = () if self._sample is None else (self._sample,)  # one colour of (H, W, S)
        if self._offset < 0:
            z = self._open_zarr()
            if self._plane is not None:  # only this channel's chunks are decoded
                return np.asarray(z[self._plane, r0:r1, c0:c1])
            return np.asarray(z[(slice(r0, r1), slice(c0, c1), *sample)])
        row_shape = self._row_shape
        row_bytes = int(np.prod(row_shape)) * self.dtype.itemsize
        mm = np.memmap(
            self._opened().file,
            dtype=self.dtype.newbyteorder(self._byteorder),
            mode="r",
            offset=self._offset + r0 * row_bytes,
            shape=(r1 - r0, *row_shape),
        )
        out = np.array(mm[(slice(None), slice(c0, c1), *sample)], dtype=self.dtype)
        del mm  # unmap now, so resident memory stays the size of one window
        return out


def _channels(header: ImageHeader) -> int:
    """How many channels (C) or colour samples (S) ``header``'s pixels have (1: grey)."""
    sizes = [n for n, a in zip(header.shape, header.axes, strict=True) if a in "CS"]
    return int(np.prod(sizes)) if sizes else 1


def _not_tiff_message(path: Path) -> str:
    """The refusal of a file that is not a TIFF."""
    return f"{path} is not a TIFF; large-image mode reads .tif/.tiff files"


def _import_zarr(path: Path) -> Any:
    """The zarr module, which compressed or tiled TIFFs need to be read window by window."""
    try:
        import zarr
    except ModuleNotFoundError:
        raise ImageReadError(
            f"{path} is compressed or tiled; reading it window by window needs zarr "
            "(pip install 'unet-edge[dask]'), or save it as an uncompressed TIFF"
        ) from None
    return zarr


#: Bytes of pixels above which a striped output is written as BigTIFF (classic TIFF
#: offsets are 32-bit; the margin leaves room for the tags).
BIGTIFF_ABOVE = 2**32 - 2**25


def write_tiff_strips(
    path: str | os.PathLike[str],
    bands: Iterable[np.ndarray],
    shape: tuple[int, int],
    rows_per_strip: int,
    provenance: Mapping[str, Any] | None = None,
    *,
    calibration: Calibration | None = None,
    ome: bool = False,
    compression: str | None = "zlib",
    dtype: np.dtype | type = np.uint8,
    late: Callable[[], Mapping[str, Any]] | None = None,
) -> Path:
    """Write a (H, W) image (``dtype``: uint8, or uint16/uint32 labels) from ``bands`` of
    rows, top to bottom, as a striped TIFF.

    Each band is ``rows_per_strip`` rows (the last may be shorter) and becomes
    one strip, encoded and written as it comes, so the image never has to fit
    in memory; strips in row order are what ImageJ 1.x reads (it cannot read
    tiled TIFFs). An ImageJ hyperstack or OME-TIFF with calibration and
    provenance as :func:`unet_edge.io.write_tiff` writes them; BigTIFF above
    :data:`BIGTIFF_ABOVE` bytes (Bio-Formats reads it, ImageJ 1.x does not, nor
    could it hold a plane that large). Atomic. ``late()``, called after the last band, gives
    provenance entries known only then (added before the file is renamed into place:
    :mod:`unet_edge.io.retag`).
    """
    if compression not in (None, "zlib"):
        raise OutputError(
            f"striped TIFFs are written with zlib or no compression, not {compression!r}"
        )
    kwargs = imagemeta.tiff_kwargs("YX", calibration, provenance or {}, ome)
    dtype = np.dtype(dtype)
    kwargs = imagej_uint32(kwargs, shape) if dtype == np.uint32 and not ome else kwargs
    big = shape[0] * shape[1] * dtype.itemsize > BIGTIFF_ABOVE

    def strips() -> Iterator[bytes]:
        for band in bands:
            raw = np.ascontiguousarray(band, dtype=dtype).tobytes()
            yield zlib.compress(raw, 6) if compression else raw

    def writer(tmp: Path) -> None:
        with warnings.catch_warnings():  # tifffile warns that ImageJ 1.x cannot read BigTIFF
            warnings.simplefilter("ignore", UserWarning)
            tifffile.imwrite(
                tmp,
                strips(),
                shape=shape,
                dtype=dtype,
                rowsperstrip=rows_per_strip,
                compression=compression,
                bigtiff=big,
                **kwargs,
            )
        if late is not None:  # e.g. the image's quality, scored while the bands were made
            from .retag import replace_provenance

            replace_provenance(tmp, {**(provenance or {}), **late()})

    return write_atomically(Path(path), writer)
