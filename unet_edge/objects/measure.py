"""Per-object measurements as sums over pixels, so that windows add up exactly.

:class:`ObjectSums` keeps, for every object id, numbers that are sums (or
minima/maxima) over the object's pixels: the pixel count, the sums of the
pixel centres' rows and columns, the bounding box, the number of pixel edges
between the object and anything else (its 4-neighbour boundary length), and
the sums of the object classes' probability and of the raw intensity. A
window of a larger image adds its pixels with :meth:`ObjectSums.add` (global
ids, its offset, a one-pixel ring of its neighbours' ids); two partial sums
combine with :meth:`ObjectSums.merge`; ids that turn out to be one object
are joined with :meth:`ObjectSums.relabel`. The result is the same, bit for
bit in the integer columns, whatever the windows were. :meth:`ObjectSums.table`
turns the sums into the measurements (:class:`unet_edge.objects.table.ObjectTable`).

Coordinates are those of pixel centres: the pixel in row r, column c has its
centre at (r + 0.5, c + 0.5), as ImageJ and QuPath measure; the bounding box
is the pixel-edge rectangle [top, top + height) x [left, left + width).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np

from ..errors import InputError
from ..imagemeta import Calibration
from .table import ObjectTable, table_from_sums

__all__ = ["ObjectSums", "measure_labels", "measure_stack"]

_BIG = np.iinfo(np.int64).max


def _zeros(n: int, dtype: type = np.int64, fill: int = 0) -> np.ndarray:
    return np.full(n, fill, dtype)


@dataclass
class ObjectSums:
    """Additive sums per object id (index = id; index 0, the background, stays empty).

    ``count``, ``edges_y`` (pixel edges to the pixel above or below: each as long as a
    pixel is wide), ``edges_x`` (to the left or right: as long as a pixel is high): int64;
    ``sum_y``, ``sum_x`` (pixel centres), ``sum_prob``: float64; ``min_y``, ``max_y``,
    ``min_x``, ``max_x``: int64 pixel indices (inclusive; ``min`` is a large number while
    ``count`` is 0); ``sum_raw``: float64 (ids, channels).
    """

    channels: int = 1
    with_prob: bool = False  # whether probabilities were added (else no mean_probability)
    with_raw: bool = False  # whether raw intensities were added (else no mean_intensity)
    count: np.ndarray = field(default_factory=lambda: _zeros(1))
    sum_y: np.ndarray = field(default_factory=lambda: _zeros(1, np.float64))
    sum_x: np.ndarray = field(default_factory=lambda: _zeros(1, np.float64))
    min_y: np.ndarray = field(default_factory=lambda: _zeros(1, fill=_BIG))
    max_y: np.ndarray = field(default_factory=lambda: _zeros(1, fill=-1))
    min_x: np.ndarray = field(default_factory=lambda: _zeros(1, fill=_BIG))
    max_x: np.ndarray = field(default_factory=lambda: _zeros(1, fill=-1))
    edges_y: np.ndarray = field(default_factory=lambda: _zeros(1))
    edges_x: np.ndarray = field(default_factory=lambda: _zeros(1))
    sum_prob: np.ndarray = field(default_factory=lambda: _zeros(1, np.float64))
    sum_raw: np.ndarray = field(default_factory=lambda: np.zeros((1, 1)))

    def __post_init__(self) -> None:
        if self.sum_raw.shape[1] != self.channels:
            self.sum_raw = np.zeros((len(self.count), self.channels))

    @property
    def size(self) -> int:
        """Ids 0..size-1 have a row (the largest id seen + 1)."""
        return len(self.count)

    @property
    def edges(self) -> np.ndarray:
        """Boundary length per id in pixel edges (4-neighbour perimeter)."""
        return self.edges_y + self.edges_x

    def _grow(self, n: int) -> None:
        """Make room for ids below ``n``."""
        extra = n - self.size
        if extra <= 0:
            return
        for f in _ARRAYS:
            a = getattr(self, f)
            pad = np.full((extra, *a.shape[1:]), _FILL.get(f, 0), a.dtype)
            setattr(self, f, np.concatenate([a, pad]))

    def add(
        self,
        labels: np.ndarray,
        top: int = 0,
        left: int = 0,
        *,
        prob: np.ndarray | None = None,
        raw: np.ndarray | None = None,
        ring: np.ndarray | None = None,
    ) -> ObjectSums:
        """Add a window's pixels; returns self.

        ``labels``: (h, w) global ids of the window whose top-left pixel is row
        ``top``, column ``left`` of the image. ``prob``: (h, w) probability that
        each pixel is an object (the object classes' summed). ``raw``: (h, w) or
        (h, w, C) raw intensities. ``ring``: the window and
        the pixels around it, (h + 2, w + 2), 0 / False outside the image: integer
        ids (an edge where a 4-neighbour has another id: give the neighbours' final
        ids), or bool, whether each pixel is an object pixel (an edge where a
        4-neighbour is none: right whenever touching object pixels are one object,
        as without split, so provisional ids may differ across windows). None: the
        window is the whole image.
        """
        lab, ring, raw = _checked(labels, ring, raw, self.channels)
        self.with_prob |= prob is not None
        self.with_raw |= raw is not None
        n = int(lab.max()) + 1 if lab.size else 1
        self._grow(n)
        h, w = lab.shape
        xs = np.arange(w, dtype=np.float64) + (left + 0.5)
        step = max(1, _STRIP // max(w, 1))  # bincount over strips: bounded temporary memory
        for r0 in range(0, h, step):
            rows = slice(r0, min(h, r0 + step))
            ids = lab[rows].ravel().astype(np.intp)
            ys = np.repeat(np.arange(rows.start, rows.stop) + (top + 0.5), w)
            for name, weights in (
                ("count", None),
                ("sum_y", ys),
                ("sum_x", np.tile(xs, rows.stop - rows.start)),
                ("sum_prob", None if prob is None else np.asarray(prob)[rows].ravel()),
            ):
                if name == "count" or weights is not None:
                    getattr(self, name)[:n] += _bincount(ids, weights, n, name == "count")
            if raw is not None:
                for c, channel in enumerate(raw[rows].reshape(len(ids), -1).T):
                    self.sum_raw[:n, c] += np.bincount(ids, channel, minlength=n)
            self._add_edges(lab[rows], ring[r0 : rows.stop + 2], top + r0, left, n)
        for name in ("count", "sum_y", "sum_x", "sum_prob", "sum_raw"):
            getattr(self, name)[0] = 0  # id 0, the background, is no object
        return self

    def _add_edges(self, lab: np.ndarray, ring: np.ndarray, top: int, left: int, n: int) -> None:
        """Boundary lengths and bounding boxes of a strip (``ring``: its labels with a
        1-px ring of neighbours, as for :meth:`add`)."""
        above_below, left_right = _edge_counts(lab, ring)
        on = ((above_below | left_right) > 0) & (lab > 0)
        ys, xs = np.nonzero(on)
        ids = lab[ys, xs].astype(np.intp)
        self.edges_y[:n] += np.bincount(ids, above_below[ys, xs], minlength=n).astype(np.int64)
        self.edges_x[:n] += np.bincount(ids, left_right[ys, xs], minlength=n).astype(np.int64)
        # An object's extreme pixels lie on its boundary (their outer neighbour is not the
        # object), so the box needs only boundary pixels: a few percent of the object's.
        ys, xs = ys + top, xs + left
        np.minimum.at(self.min_y, ids, ys)
        np.maximum.at(self.max_y, ids, ys)
        np.minimum.at(self.min_x, ids, xs)
        np.maximum.at(self.max_x, ids, xs)

    def merge(self, other: ObjectSums) -> ObjectSums:
        """A new ObjectSums: ``self`` and ``other`` (sums of other pixels, same ids) added."""
        out = ObjectSums(self.channels, self.with_prob | other.with_prob)
        out.with_raw = self.with_raw | other.with_raw
        out._grow(max(self.size, other.size))
        for part in (self, other):
            n = part.size
            for f in _ARRAYS:
                a, b = getattr(out, f), getattr(part, f)
                a[:n] = _combine(f, a[:n], b)
        return out

    def relabel(self, mapping: np.ndarray) -> ObjectSums:
        """A new ObjectSums where old id i counts as id ``mapping[i]`` (ids mapped to one id
        are one object: their sums add; ``mapping[0]`` must be 0)."""
        mapping = np.asarray(mapping, np.intp)
        if mapping.shape != (self.size,) or mapping[0] != 0:
            raise InputError(
                f"mapping must give one new id per old id 0..{self.size - 1} with 0 -> 0, "
                f"got shape {mapping.shape}"
            )
        out = ObjectSums(self.channels, self.with_prob, self.with_raw)
        out._grow(int(mapping.max()) + 1)
        for f in _ARRAYS:
            ufunc = _UFUNC.get(f, np.add)
            ufunc.at(getattr(out, f), mapping[1:], getattr(self, f)[1:])
        return out

    def table(self, calibration: Calibration | None = None, z: int | None = None) -> ObjectTable:
        """The measurements of every id with pixels (ascending), in µm when ``calibration``
        converts to micrometres, else in pixels; ``z``: the slice (0-based) they lie in."""
        return table_from_sums(self, calibration, z)


#: Pixels per strip that :meth:`ObjectSums.add` sums at once (its temporaries: ~40 B each).
_STRIP = 1 << 20


def _bincount(ids: np.ndarray, weights: np.ndarray | None, n: int, count: bool) -> np.ndarray:
    """Per-id sums of ``weights`` (or counts) over the pixels ``ids``, length ``n``."""
    out = np.bincount(ids, None if count else weights, minlength=n)
    return out.astype(np.int64) if count else out


def _checked(
    labels: np.ndarray, ring: np.ndarray | None, raw: np.ndarray | None, channels: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The window's labels, ring and raw values as arrays (see :meth:`ObjectSums.add`),
    or InputError, before anything is added."""
    lab = np.asarray(labels)
    if lab.ndim != 2 or lab.dtype.kind not in "ui":
        raise InputError(f"labels must be integer (h, w), got {lab.dtype} {lab.shape}")
    ring = np.pad(lab, 1) if ring is None else np.asarray(ring)
    if ring.shape != (lab.shape[0] + 2, lab.shape[1] + 2):
        raise InputError(
            f"ring must be (h + 2, w + 2) = {(lab.shape[0] + 2, lab.shape[1] + 2)} for "
            f"labels of shape {lab.shape}, got {ring.shape}"
        )
    values = None if raw is None else np.asarray(raw)  # bincount converts it strip by strip
    c = None if values is None else (1 if values.ndim == 2 else values.shape[-1])
    if values is not None and (values.shape[:2] != lab.shape or values.ndim > 3 or c != channels):
        raise InputError(
            f"raw must be (h, w) or (h, w, C) like labels {lab.shape} with C = {channels} "
            f"channel(s) (ObjectSums(channels=C) for C-channel images), got {values.shape}"
        )
    return lab, ring, values


def _edge_counts(lab: np.ndarray, ring: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel of ``lab`` (h, w), how many of its neighbours above/below and left/right are
    another object or none (see :meth:`ObjectSums.add` for ``ring``): uint8 (h, w) twice.
    Each is one pixel edge of the object's boundary."""
    h, w = lab.shape
    (up, down), (west, east) = (ring[:h, 1:-1], ring[2:, 1:-1]), (ring[1:-1, :w], ring[1:-1, 2:])
    if ring.dtype == np.bool_:
        return (~up).view(np.uint8) + ~down, (~west).view(np.uint8) + ~east
    return (up != lab).view(np.uint8) + (down != lab), (west != lab).view(np.uint8) + (east != lab)


_ARRAYS = [f.name for f in fields(ObjectSums) if f.type not in ("int", "bool")]
_FILL = {"min_y": _BIG, "min_x": _BIG, "max_y": -1, "max_x": -1}
_UFUNC = {"min_y": np.minimum, "min_x": np.minimum, "max_y": np.maximum, "max_x": np.maximum}


def _combine(name: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _UFUNC.get(name, np.add)(a, b)


def measure_labels(
    labels: np.ndarray,
    *,
    prob: np.ndarray | None = None,
    raw: np.ndarray | None = None,
    calibration: Calibration | None = None,
    z: int | None = None,
) -> ObjectTable:
    """The measurements of the objects of one (H, W) label image (see :class:`ObjectSums`)."""
    raw_arr = None if raw is None else np.asarray(raw)
    channels = 1 if raw_arr is None or raw_arr.ndim == 2 else raw_arr.shape[-1]
    sums = ObjectSums(channels).add(labels, prob=prob, raw=raw_arr)
    return sums.table(calibration, z)


def measure_stack(
    labels: np.ndarray,
    *,
    prob: np.ndarray | None = None,
    raw: np.ndarray | Sequence[np.ndarray] | None = None,
    calibration: Calibration | None = None,
) -> ObjectTable:
    """The measurements of a (Z, H, W) label stack labelled slice by slice, one table with a
    ``slice`` column; ``prob`` (Z, H, W) and ``raw`` (Z, H, W[, C]) per slice."""
    tables = [
        measure_labels(
            lab,
            prob=None if prob is None else prob[i],
            raw=None if raw is None else raw[i],
            calibration=calibration,
            z=i,
        )
        for i, lab in enumerate(labels)
    ]
    return ObjectTable.concat(tables)
