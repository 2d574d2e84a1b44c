"""All file I/O of the runtime: images in, masks and probabilities out.

Reading keeps the pixel type (8-bit, 16-bit, float32). PNG, JPEG and BMP go
through OpenCV (colour returned as RGB), TIFF through tifffile (multi-page
files come back as a (Z, H, W[, C]) stack). Every write goes to a temporary
file in the destination folder and is renamed over the target, so a crash
never leaves a partial file; inputs are never overwritten.

Every temporary file is named ``.NAME.unet-edge-tmp-HOST-PID-RANDOM.SUFFIX``
(:func:`is_temporary`): hidden, never taken as an input, and, while it is
being written, listed in a registry that :func:`remove_temporaries` empties
(the CLI calls it on SIGTERM, SIGINT and SIGHUP). One left by a killed
process (SIGKILL) is recognised by its host and process id and removed by
:func:`clean_stale_temporaries`.

Before any pixel is decoded the header is read (:func:`image_header`): a TIFF
must hold every page its directory chain declares, with its pixel data inside
the file, and no image may have more than :data:`MAX_PIXELS` pixels per plane
(a decompression bomb, or a header that lies).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import math
import os
import re
import secrets
import socket
import struct
import threading
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np
import tifffile

from .. import imagemeta
from ..capture import captured
from ..errors import ImageReadError, InputError, OutputError, OutputExistsError
from ..imagemeta import Calibration

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


#: Most pixels one image plane may have (None: no limit), checked from the header before
#: decoding, like Pillow's ``MAX_IMAGE_PIXELS``. A gigapixel (10^9) is 2.5x the 20000 x 20000
#: mosaics segmented window by window (about 15 minutes of the shipped model on 2 cores),
#: and far below what a lying or bomb header claims (200000 x 200000 is 40 gigapixels).
#: Raise it per call (``max_pixels=``) or here for the whole process.
MAX_PIXELS: int | None = 10**9


@dataclass(frozen=True)
class ImageHeader:
    """What a file's header says, read without decoding any pixel.

    ``shape`` as :func:`read_image` would return it ((H, W), (H, W, C), (Z, H, W[, C])),
    ``axes`` one letter per axis (``Y``, ``X``, ``S`` for colour samples, anything
    else a stack axis), ``dtype`` the pixel type.
    """

    path: Path
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    axes: str

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
        return math.prod(n for n, a in zip(self.shape, self.axes, strict=True) if a == "S")


def image_header(path: str | os.PathLike[str], *, max_pixels: int | None = None) -> ImageHeader:
    """The shape, dtype and axes of an image file, from its header alone.

    Raises :class:`ImageReadError` for a file that is missing, not an image,
    truncated, a TIFF with a damaged page, or one with more than ``max_pixels``
    pixels per plane (None: :data:`MAX_PIXELS`; 0: no limit).
    """
    path = Path(path)
    suffix = _check_readable(path)
    if suffix in TIFF_SUFFIXES:
        with _checked_tiff(path, max_pixels) as (_, header):
            return header
    header = _opencv_header(path, suffix)
    _check_pixels(header, max_pixels)
    return header


@contextlib.contextmanager
def _checked_tiff(
    path: Path, max_pixels: int | None
) -> Iterator[tuple[tifffile.TiffFile, ImageHeader]]:
    """The open TIFF (every page checked, :func:`_open_tiff`) and its header, within the
    pixel limit: the header checks of :func:`image_header` on one open file."""
    with _open_tiff(path) as tf:
        header = _tiff_series_header(path, tf)
        _check_pixels(header, max_pixels)
        yield tf, header


def _check_pixels(header: ImageHeader, max_pixels: int | None) -> None:
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
    return f"{n / 1e6:.0f} megapixels" if n >= 10**7 else f"{n} pixels"


def read_image(path: str | os.PathLike[str], *, max_pixels: int | None = None) -> np.ndarray:
    """Read an image with its pixel type unchanged.

    Returns (H, W) for grayscale, (H, W, C) RGB(A) for colour, and (Z, H, W)
    or (Z, H, W, C) for multi-page TIFF stacks (every page the file declares,
    or an error naming the page that cannot be read). The header is checked
    first (:func:`image_header`, ``max_pixels`` as there). Raises
    :class:`ImageReadError` for missing, empty, truncated, damaged or
    mislabelled files.
    """
    path = Path(path)
    if path.suffix.lower() not in TIFF_SUFFIXES:
        image_header(path, max_pixels=max_pixels)
        return _decode(path, np.fromfile(path, dtype=np.uint8))
    with _checked_tiff(path, max_pixels) as (tf, _):
        try:
            arr = np.asarray(tf.asarray())
        except Exception as e:
            raise _not_tiff(path, e) from None
    if arr.ndim < 2 or 0 in arr.shape:
        raise ImageReadError(
            f"{path} is not a readable TIFF: it holds no image data (array of shape "
            f"{arr.shape}); it may be truncated or damaged"
        )
    return arr


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


def _opencv_header(path: Path, suffix: str) -> ImageHeader:
    """Width, height, channels and depth of a PNG, JPEG or BMP from its header bytes."""
    dtype: np.dtype[Any] = np.dtype(np.uint8)
    try:
        with open(path, "rb") as f:
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


def _jpeg_size(f: Any) -> tuple[int, int, int]:
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


def is_stack(path: str | os.PathLike[str]) -> bool:
    """Whether a file holds a stack of frames (Z, H, W[, C]) rather than one frame.

    Only TIFF files can: their first series has a leading axis that is neither
    a spatial nor a sample (colour) axis, e.g. ``ZYX`` or ``IYX``.
    """
    path = Path(path)
    if path.suffix.lower() not in TIFF_SUFFIXES:
        return False
    return image_header(path, max_pixels=0).is_stack


def _not_tiff(path: Path, e: BaseException) -> ImageReadError:
    return ImageReadError(f"{path} is not a readable TIFF ({type(e).__name__}: {e})")


@contextlib.contextmanager
def _open_tiff(path: Path) -> Iterator[tifffile.TiffFile]:
    """A TiffFile that holds every page its directory chain declares, data inside the file."""
    _check_readable(path)
    pages = _tiff_page_count(path)
    try:
        tf = tifffile.TiffFile(path)
    except Exception as e:
        raise _not_tiff(path, e) from None
    with tf:
        try:
            read = len(tf.pages)
            shapes = [tuple(s.shape) for s in tf.series]
        except Exception as e:
            raise _not_tiff(path, e) from None
        if read < pages:
            why = f"the file declares {pages} pages, tifffile parsed {read}"
            raise _page_error(path, read + 1, why)
        if len(shapes) > 1:
            # tifffile would return the first series alone: never drop pages silently.
            raise ImageReadError(
                f"{path} is a stack with pages of different sizes {shapes[:4]}"
                f"{' ...' if len(shapes) > 4 else ''}; split it into one file per size"
            )
        covered = math.prod(shapes[0]) // max(1, math.prod(tf.pages.first.shape))
        if covered < pages:  # metadata (ImageJ's images=N, a shape) describing fewer pages
            why = f"the file declares {pages} pages, its metadata describes {covered}"
            raise _page_error(path, covered + 1, why)
        _check_extent(path, tf, pages)
        yield tf


def _page_error(path: Path, page: int, why: str) -> ImageReadError:
    return ImageReadError(
        f"{path} is not a readable TIFF: page {page} (index {page - 1}) cannot be read ({why}); "
        "pages are never dropped, re-copy or re-export the file"
    )


def _tiff_page_count(path: Path) -> int:
    """Walk the chain of image directories (IFDs): how many pages the file declares.

    A directory that points outside the file, is cut short, holds an absurd number
    of tags, or loops back is an error naming its page (tifffile would log it and
    return the pages before it).
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(16)
        order = "<" if head[:2] == b"II" else ">"
        big = head[2:4] in (b"+\x00", b"\x00+")
        off, count, entry = ("Q", "Q", 20) if big else ("I", "H", 12)
        try:
            offset = struct.unpack(order + off, head[8:16] if big else head[4:8])[0]
        except struct.error:
            raise _not_tiff(path, EOFError("the header is cut short")) from None
        n_size, off_size = struct.calcsize(count), struct.calcsize(off)
        seen: set[int] = set()
        while offset:
            page = len(seen) + 1
            if offset in seen:
                raise _page_error(path, page, f"its directory loops back to byte {offset}")
            f.seek(offset)
            raw = f.read(n_size)
            n = struct.unpack(order + count, raw)[0] if len(raw) == n_size else 0
            end = offset + n_size + n * entry + off_size
            if not 0 < n <= 4096 or end > size:
                why = f"its directory at byte {offset} is damaged or beyond the {size}-byte file"
                raise _page_error(path, page, why)
            seen.add(offset)
            f.seek(end - off_size)
            offset = struct.unpack(order + off, f.read(off_size))[0]
    return len(seen)


def _check_extent(path: Path, tf: tifffile.TiffFile, pages: int) -> None:
    """Refuse a TIFF whose first or last page's pixel data lies beyond the end of the file."""
    size = path.stat().st_size
    for index in sorted({0, pages - 1}):
        try:
            page = tf.pages[index]
            offsets = np.asarray(page.dataoffsets, np.int64)
            counts = np.asarray(page.databytecounts, np.int64)
            need = int(page.nbytes) if int(page.compression) == 1 else 0
        except Exception as e:
            raise _page_error(path, index + 1, f"{type(e).__name__}: {e}") from None
        ends = int((offsets + counts).max()) if len(offsets) else 0
        if len(offsets) == 0 or ends > size or int(counts.sum()) < need:
            raise ImageReadError(
                f"{path} is truncated or its header lies: page {index + 1} declares "
                f"{max(ends, need)} bytes of pixel data but the file has {size} bytes; re-copy it"
            )


def _tiff_series_header(path: Path, tf: tifffile.TiffFile) -> ImageHeader:
    series = tf.series[0]
    shape = tuple(int(n) for n in series.shape)
    return ImageHeader(path, shape, np.dtype(series.dtype), series.axes)


def _png_complete(data: np.ndarray) -> bool:
    tail = data[-12:].tobytes()
    return len(data) >= 12 and tail[4:8] == b"IEND"


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


def collect_inputs(specs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Expand files, folders (their images, sorted) and glob patterns to a list of images."""
    found: list[Path] = []
    if isinstance(specs, (str, os.PathLike)) or not isinstance(specs, Iterable):
        specs = [specs]  # one path (not an iterable of its characters), or refused below
    for spec in specs:
        p = as_path(spec, "inputs")
        if p.is_dir():
            imgs = sorted(q for q in p.iterdir() if _listed(q))
            if not imgs:
                raise InputError(f"folder {p} contains no images ({', '.join(sorted(SUFFIXES))})")
            found.extend(imgs)
        elif p.exists():
            if is_temporary(p):
                raise InputError(
                    f"{p} is a temporary file of an interrupted unet-edge run, not an image; "
                    "delete it"
                )
            found.append(p)
        elif glob.has_magic(str(spec)):
            matches = sorted(
                Path(m) for m in glob.glob(str(spec)) if Path(m).is_file() and not is_temporary(m)
            )
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


def _listed(p: Path) -> bool:
    """Whether a folder or pattern lists ``p`` as an input: an image file, not hidden (so
    never a temporary file)."""
    return p.suffix.lower() in SUFFIXES and not p.name.startswith(".") and p.is_file()


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


#: Every temporary file holds this in its name: ``.NAME.unet-edge-tmp-HOST-PID-RANDOM.SUFFIX``.
TEMP_MARK = ".unet-edge-tmp-"
_TEMP_NAME = re.compile(
    r"^\.(?P<target>.+)" + re.escape(TEMP_MARK) + r"(?P<host>[0-9a-f]{4})-(?P<pid>\d+)-[0-9a-f]{8}"
)
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:4]
_LIVE: set[Path] = set()  # temporary files being written by this process
_LIVE_LOCK = threading.Lock()


def is_temporary(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is named like a unet-edge temporary file (never an input)."""
    return _TEMP_NAME.match(Path(path).name) is not None


def remove_temporaries() -> list[Path]:
    """Delete the temporary files this process is writing now (for a signal handler).

    The writes they belong to fail afterwards; the final files are untouched.
    """
    with _LIVE_LOCK:
        live = list(_LIVE)
    for tmp in live:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return live


def clean_stale_temporaries(folder: str | os.PathLike[str]) -> tuple[list[Path], list[Path]]:
    """Remove temporary files in ``folder`` left by unet-edge processes that no longer run.

    A file is stale when its name says it was written on this host by a process
    id that is gone (killed with SIGKILL, power cut). Returns (removed, kept):
    kept are those of running processes or other hosts, which are left alone.
    """
    folder = Path(folder)
    removed: list[Path] = []
    kept: list[Path] = []
    if not folder.is_dir():
        return removed, kept
    for p in sorted(folder.iterdir()):
        m = _TEMP_NAME.match(p.name)
        if m is None or not p.is_file():
            continue
        pid = int(m["pid"])
        if m["host"] == _HOST and pid != os.getpid() and not _pid_alive(pid):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
            removed.append(p)
        else:
            kept.append(p)
    return removed, kept


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's), or we cannot tell: keep its files
    return True


def _create_temporary(path: Path) -> Path:
    """An empty new file beside ``path``, registered as live, with the permissions a plain
    open would give.

    (``tempfile.mkstemp`` would make it 0600, and the rename would keep that: results
    that colleagues in the lab cannot read.) The name keeps ``path``'s suffix, for
    writers that choose the format by it.
    """
    for _ in range(100):
        tag = f"{_HOST}-{os.getpid()}-{secrets.token_hex(4)}"
        tmp = path.with_name(f".{path.name}{TEMP_MARK}{tag}{path.suffix}")
        with _LIVE_LOCK:
            _LIVE.add(tmp)  # before it exists: a signal right after the open still finds it
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
        except FileExistsError:
            _forget(tmp)
            continue
        except OSError as e:
            _forget(tmp)
            raise OutputError(f"cannot write in {path.parent}: {e.strerror}") from None
        os.close(fd)
        return tmp
    raise OutputError(f"cannot create a temporary file in {path.parent}")


def _forget(tmp: Path) -> None:
    with _LIVE_LOCK:
        _LIVE.discard(tmp)


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
        _forget(tmp)


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
        raise _not_tiff(path, e) from None


class TiffWindows:
    """Random access to windows of a large single-image TIFF, without reading all of it.

    An uncompressed, contiguous TIFF is read through a memory map of just the
    rows a window needs, unmapped after each read, so resident memory stays
    the size of a window however large the file is. Other TIFFs (compressed,
    tiled) are read through tifffile's zarr store, which decodes only the
    chunks a window touches (needs the ``[dask]`` extra for zarr).
    """

    def __init__(self, path: str | os.PathLike[str], *, max_pixels: int | None = None) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in TIFF_SUFFIXES:
            raise InputError(f"{self.path} is not a TIFF; large-image mode reads .tif/.tiff files")
        with _checked_tiff(self.path, max_pixels) as (tf, _):
            try:
                series = tf.series[0]
                page = tf.pages.first
                self.shape: tuple[int, ...] = tuple(int(s) for s in series.shape)
                self.dtype = np.dtype(series.dtype)
                contiguous = bool(page.is_contiguous) and len(tf.pages) == 1
                self._offset = int(page.dataoffsets[0]) if contiguous else -1
                self._byteorder = tf.byteorder
            except Exception as e:
                raise _not_tiff(self.path, e) from None
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
        try:
            return self._read(rows, cols)
        except Exception as e:  # the file changed or was cut short after it was opened
            raise ImageReadError(
                f"{self.path}: rows {rows[0]}-{rows[1]}, columns {cols[0]}-{cols[1]} cannot be "
                f"read ({type(e).__name__}: {e}); the file may be truncated or damaged"
            ) from None

    def _read(self, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
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
