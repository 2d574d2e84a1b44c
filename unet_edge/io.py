"""All file I/O of the runtime: images in, masks and probabilities out.

Reading keeps the pixel type (8-bit, 16-bit, float32). PNG, JPEG and BMP go
through OpenCV (colour returned as RGB), TIFF through tifffile (multi-page
files come back as a (Z, H, W[, C]) stack). Every write goes to a temporary
file in the destination folder and is renamed over the target, so a crash
never leaves a partial file; inputs are never overwritten.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import secrets
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np
import tifffile

from . import imagemeta
from .errors import ImageReadError, InputError, OutputError, OutputExistsError
from .imagemeta import Calibration

_T = TypeVar("_T")

OPENCV_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}
TIFF_SUFFIXES = {".tif", ".tiff"}
SUFFIXES = OPENCV_SUFFIXES | TIFF_SUFFIXES

_MAGIC = {
    ".png": (b"\x89PNG\r\n\x1a\n",),
    ".jpg": (b"\xff\xd8\xff",),
    ".jpeg": (b"\xff\xd8\xff",),
    ".bmp": (b"BM",),
    ".tif": (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"),
    ".tiff": (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"),
}


def _check_readable(path: Path) -> str:
    suffix = path.suffix.lower()
    if not path.exists():
        raise ImageReadError(f"input {path} does not exist")
    if path.is_dir():
        raise ImageReadError(f"input {path} is a folder, expected an image file")
    if suffix not in SUFFIXES:
        raise ImageReadError(
            f"{path} has suffix {path.suffix!r}; supported images are {', '.join(sorted(SUFFIXES))}"
        )
    size = path.stat().st_size
    if size == 0:
        raise ImageReadError(f"{path} is empty (0 bytes); re-export or re-copy the image")
    with open(path, "rb") as f:
        head = f.read(8)
    if not head.startswith(_MAGIC[suffix]):
        raise ImageReadError(
            f"{path} is not a {suffix[1:].upper()} file (its first bytes are {head[:8]!r}); "
            "check the file or give it the right suffix"
        )
    return suffix


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image with its pixel type unchanged.

    Returns (H, W) for grayscale, (H, W, C) RGB(A) for colour, and (Z, H, W)
    or (Z, H, W, C) for multi-page TIFF stacks. Raises
    :class:`ImageReadError` for missing, empty, truncated or mislabelled files.
    """
    path = Path(path)
    suffix = _check_readable(path)
    if suffix in TIFF_SUFFIXES:
        try:
            with tifffile.TiffFile(path) as tf:
                shapes = [tuple(s.shape) for s in tf.series]
                if len(shapes) > 1:
                    # tifffile would return the first series alone: never drop pages silently.
                    raise ImageReadError(
                        f"{path} is a stack with pages of different sizes {shapes[:4]}"
                        f"{' ...' if len(shapes) > 4 else ''}; split it into one file per size"
                    )
                arr = tf.asarray()
        except ImageReadError:
            raise
        except Exception as e:
            raise ImageReadError(
                f"{path} is not a readable TIFF ({type(e).__name__}: {e})"
            ) from None
        arr = np.asarray(arr)
        if arr.ndim < 2 or 0 in arr.shape:
            raise ImageReadError(
                f"{path} is not a readable TIFF: it holds no image data (array of shape "
                f"{arr.shape}); it may be truncated or damaged"
            )
        return arr
    # OpenCV reports a truncated PNG on stderr and may return a partial image; decode
    # ourselves with a size check so a damaged file is an error, not a half-black frame.
    data = np.fromfile(path, dtype=np.uint8)
    if suffix == ".png" and not _png_complete(data):
        raise ImageReadError(f"{path} is a truncated or damaged PNG (no IEND chunk); re-copy it")
    decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if decoded is None:
        raise ImageReadError(
            f"{path} could not be decoded as {suffix[1:].upper()}; it may be damaged"
        )
    if decoded.ndim == 3:
        code = cv2.COLOR_BGRA2RGBA if decoded.shape[2] == 4 else cv2.COLOR_BGR2RGB
        decoded = cv2.cvtColor(decoded, code)
    return np.asarray(decoded)


def is_stack(path: str | os.PathLike[str]) -> bool:
    """Whether a file holds a stack of frames (Z, H, W[, C]) rather than one frame.

    Only TIFF files can: their first series has a leading axis that is neither
    a spatial nor a sample (colour) axis, e.g. ``ZYX`` or ``IYX``.
    """
    path = Path(path)
    if path.suffix.lower() not in TIFF_SUFFIXES:
        return False
    shape, _, axes = tiff_header(path)
    return len(shape) >= 3 and axes[0] not in "YXS"


def tiff_header(path: str | os.PathLike[str]) -> tuple[tuple[int, ...], np.dtype[Any], str]:
    """Shape, dtype and axes (e.g. ``"ZYX"``) of a TIFF's first series; no pixels are read."""
    path = Path(path)
    _check_readable(path)
    try:
        with tifffile.TiffFile(path) as tf:
            series = tf.series[0]
            return tuple(int(n) for n in series.shape), np.dtype(series.dtype), series.axes
    except Exception as e:
        raise ImageReadError(f"{path} is not a readable TIFF ({type(e).__name__}: {e})") from None


def _png_complete(data: np.ndarray) -> bool:
    tail = data[-12:].tobytes()
    return len(data) >= 12 and tail[4:8] == b"IEND"


def read_tiff_lazy(path: str | os.PathLike[str]) -> np.ndarray:
    """A read-only memory map of an uncompressed TIFF (for images larger than memory)."""
    path = Path(path)
    _check_readable(path)
    try:
        return np.asarray(tifffile.memmap(path, mode="r"))
    except Exception as e:
        raise ImageReadError(
            f"{path} cannot be memory-mapped ({e}); large-image mode needs an uncompressed TIFF"
        ) from None


def collect_inputs(specs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Expand files, folders (their images, sorted) and glob patterns to a list of images."""
    found: list[Path] = []
    if isinstance(specs, (str, os.PathLike)) or not isinstance(specs, Iterable):
        specs = [specs]  # one path (not an iterable of its characters), or refused below
    for spec in specs:
        p = as_path(spec, "inputs")
        if p.is_dir():
            imgs = sorted(q for q in p.iterdir() if q.suffix.lower() in SUFFIXES and q.is_file())
            if not imgs:
                raise InputError(f"folder {p} contains no images ({', '.join(sorted(SUFFIXES))})")
            found.extend(imgs)
        elif p.exists():
            found.append(p)
        elif glob.has_magic(str(spec)):
            matches = sorted(Path(m) for m in glob.glob(str(spec)) if Path(m).is_file())
            if not matches:
                raise InputError(f"pattern {spec!r} matches no files")
            found.extend(matches)
        else:
            raise ImageReadError(f"input {p} does not exist")
    if not found:
        raise InputError("no input images given")
    unique: dict[Path, Path] = {}
    for p in found:  # the same file named twice (folder and glob) is segmented once
        unique.setdefault(p.resolve(), p)
    return list(unique.values())


def check_output(path: Path, overwrite: bool, inputs: Iterable[Path] = ()) -> None:
    """Refuse an output that exists (without ``overwrite``), is an input, or has no folder."""
    if any(path.resolve() == Path(i).resolve() for i in inputs):
        raise OutputExistsError(
            f"output {path} is one of the inputs; inputs are never overwritten, write the "
            "results to another folder",
            option="output",
        )
    if path.exists() and not overwrite:
        raise OutputExistsError(
            f"{path} exists and overwriting was not asked for", option="overwrite"
        )
    if not path.parent.is_dir():
        raise OutputError(f"output folder {path.parent} does not exist; create it first")


def _create_temporary(path: Path) -> Path:
    """An empty new file beside ``path``, with the permissions a plain open would give.

    (``tempfile.mkstemp`` would make it 0600, and the rename would keep that: results
    that colleagues in the lab cannot read.)
    """
    for _ in range(100):
        tmp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
        except FileExistsError:
            continue
        except OSError as e:
            raise OutputError(f"cannot write in {path.parent}: {e.strerror}") from None
        os.close(fd)
        return tmp
    raise OutputError(f"cannot create a temporary file in {path.parent}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` if the block succeeds."""
    path = Path(path)
    if not path.parent.is_dir():
        raise OutputError(f"output folder {path.parent} does not exist (was it removed?)")
    tmp = _create_temporary(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except FileNotFoundError:
        raise OutputError(
            f"output folder {path.parent} disappeared while writing {path.name}"
        ) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _write_with(path: Path, writer: Callable[[Path], None]) -> Path:
    with atomic_path(path) as tmp:
        writer(tmp)
    return path


def write_png(
    path: str | os.PathLike[str],
    image: np.ndarray,
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """Write a uint8/uint16 (H, W) or RGB (H, W, 3) image as PNG, atomically;
    ``provenance`` goes into a ``tEXt`` chunk as JSON (:func:`read_provenance`)."""
    arr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)

    def writer(tmp: Path) -> None:
        ok, buf = cv2.imencode(".png", arr)
        if not ok:
            raise OutputError(f"OpenCV could not encode {path} as PNG")
        data = buf.tobytes()
        if provenance is not None:
            data = imagemeta.png_with_text(
                data, imagemeta.PROVENANCE_KEY, json.dumps(dict(provenance))
            )
        tmp.write_bytes(data)

    return _write_with(Path(path), writer)


def write_tiff(
    path: str | os.PathLike[str],
    data: np.ndarray,
    provenance: Mapping[str, Any] | None = None,
    *,
    axes: str | None = None,
    calibration: Calibration | None = None,
    ome: bool = False,
    **kwargs: Any,
) -> Path:
    """Write an array as TIFF atomically.

    With ``axes`` (``"ZCYX"``, ``"CYX"``, ``"ZYX"``, ``"YX"``; uint8, uint16 or
    float32 data) an ImageJ hyperstack, or OME-TIFF if ``ome``, with the pixel
    size of ``calibration`` and ``provenance`` where each format keeps it
    (:func:`unet_edge.imagemeta.tiff_kwargs`). Without ``axes`` a plain TIFF
    (pages) with ``provenance`` as JSON in the ImageDescription.
    """
    if axes is not None:
        _check_hyperstack(path, data, axes)
        kwargs.update(imagemeta.tiff_kwargs(axes, calibration, provenance or {}, ome))
    else:
        kwargs.update(description=json.dumps(dict(provenance or {})), metadata=None)
    kwargs.setdefault("photometric", "minisblack")  # a (Z, H, W) stack is pages, not RGB

    def writer(tmp: Path) -> None:
        tifffile.imwrite(tmp, data, **kwargs)

    return _write_with(Path(path), writer)


_HYPERSTACK_DTYPES = (np.uint8, np.uint16, np.float32)  # what ImageJ hyperstacks hold


def _check_hyperstack(path: str | os.PathLike[str], data: np.ndarray, axes: str) -> None:
    if data.ndim != len(axes) or data.dtype not in _HYPERSTACK_DTYPES:
        raise OutputError(
            f"cannot write {path}: an array of shape {data.shape} and dtype {data.dtype} as "
            f"axes {axes!r}; expected {len(axes)} dimensions of uint8, uint16 or float32"
        )


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
    """``read`` applied to the open TIFF ``path``; ImageReadError if it is not one."""
    _check_readable(path)
    try:
        with tifffile.TiffFile(path) as tf:
            return read(tf)
    except Exception as e:
        raise ImageReadError(f"{path} is not a readable TIFF ({type(e).__name__}: {e})") from None


class TiffWindows:
    """Random access to windows of a large single-image TIFF, without reading all of it.

    An uncompressed, contiguous TIFF is read through a memory map of just the
    rows a window needs, unmapped after each read, so resident memory stays
    the size of a window however large the file is. Other TIFFs (compressed,
    tiled) are read through tifffile's zarr store, which decodes only the
    chunks a window touches (needs the ``[dask]`` extra for zarr).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in TIFF_SUFFIXES:
            raise InputError(f"{self.path} is not a TIFF; large-image mode reads .tif/.tiff files")
        _check_readable(self.path)
        try:
            with tifffile.TiffFile(self.path) as tf:
                series = tf.series[0]
                page = tf.pages.first
                self.shape: tuple[int, ...] = tuple(int(s) for s in series.shape)
                self.dtype = np.dtype(series.dtype)
                contiguous = bool(page.is_contiguous) and len(tf.pages) == 1
                self._offset = int(page.dataoffsets[0]) if contiguous else -1
                self._byteorder = tf.byteorder
        except Exception as e:
            raise ImageReadError(
                f"{self.path} is not a readable TIFF ({type(e).__name__}: {e})"
            ) from None
        if len(self.shape) not in (2, 3) or (len(self.shape) == 3 and self.shape[2] > 4):
            raise InputError(
                f"{self.path} holds an array of shape {self.shape}; large-image mode takes one "
                "(H, W) or (H, W, C) image, not a stack (segment stacks slice by slice)"
            )
        self.ndim = len(self.shape)
        self._zarr: Any = None
        if self._offset < 0:
            self._open_zarr()

    def _open_zarr(self) -> Any:
        if self._zarr is None:
            try:
                import zarr
            except ModuleNotFoundError:
                raise ImageReadError(
                    f"{self.path} is compressed or tiled; reading it window by window needs zarr "
                    "(pip install 'unet-edge[dask]'), or save it as an uncompressed TIFF"
                ) from None
            self._zarr = zarr.open(tifffile.imread(self.path, aszarr=True), mode="r")
        return self._zarr

    def __getstate__(self) -> dict[str, Any]:
        # Picklable for Dask workers: each process reopens the file itself.
        return {**self.__dict__, "_zarr": None}

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
        row_bytes = int(np.prod(self.shape[1:])) * self.dtype.itemsize
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
        (r0, r1), (c0, c1) = rows, cols
        if self._offset < 0:
            return np.asarray(self._open_zarr()[r0:r1, c0:c1])
        row_shape = self.shape[1:]
        row_bytes = int(np.prod(row_shape)) * self.dtype.itemsize
        mm = np.memmap(
            self.path,
            dtype=self.dtype.newbyteorder(self._byteorder),
            mode="r",
            offset=self._offset + r0 * row_bytes,
            shape=(r1 - r0, *row_shape),
        )
        out = np.array(mm[:, c0:c1], dtype=self.dtype)
        del mm  # unmap now, so resident memory stays the size of one window
        return out


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
) -> Path:
    """Write a (H, W) uint8 image from ``bands`` of rows, top to bottom, as a striped TIFF.

    Each band is ``rows_per_strip`` rows (the last may be shorter) and becomes
    one strip, encoded and written as it comes, so the image never has to fit
    in memory; strips in row order are what ImageJ 1.x reads (it cannot read
    tiled TIFFs). An ImageJ hyperstack or OME-TIFF with calibration and
    provenance as :func:`write_tiff` writes them; BigTIFF above
    :data:`BIGTIFF_ABOVE` bytes (Bio-Formats reads it, ImageJ 1.x does not, nor
    could it hold a plane that large). Atomic.
    """
    if compression not in (None, "zlib"):
        raise OutputError(
            f"striped TIFFs are written with zlib or no compression, not {compression!r}"
        )
    kwargs = imagemeta.tiff_kwargs("YX", calibration, provenance or {}, ome)
    big = shape[0] * shape[1] > BIGTIFF_ABOVE

    def strips() -> Iterator[bytes]:
        for band in bands:
            raw = np.ascontiguousarray(band, dtype=np.uint8).tobytes()
            yield zlib.compress(raw, 6) if compression else raw

    def writer(tmp: Path) -> None:
        with warnings.catch_warnings():  # tifffile warns that ImageJ 1.x cannot read BigTIFF
            warnings.simplefilter("ignore", UserWarning)
            tifffile.imwrite(
                tmp,
                strips(),
                shape=shape,
                dtype=np.uint8,
                rowsperstrip=rows_per_strip,
                compression=compression,
                bigtiff=big,
                **kwargs,
            )

    return _write_with(Path(path), writer)


def as_path(value: object, what: str) -> Path:
    """An API argument that names a file or folder, as a Path; anything else is an InputError."""
    if isinstance(value, (str, os.PathLike)) and str(os.fspath(value)):
        return Path(value)
    raise InputError(
        f"{what} must be a file or folder path (str or pathlib.Path), got {value!r}", option=what
    )
