"""Touching objects split band by band, equal to ``label(mask, split="watershed")`` id for id.

The split (:func:`unet_edge.objects.split.split_object`) of an object depends on
nothing but the object's own pixels in its bounding box and
:data:`~unet_edge.objects.split.MARGIN_PX` around it (cut at the image's edges):
its distance to the background is its distance to the nearest pixel that is not
the object (that pixel is 4-adjacent to the object, so it is background, inside
the box plus one pixel), the Gaussian is taken of the object's distances alone,
and its maxima, flood and merges are computed in that crop. So an object can be
split from its crop wherever the crop is cut from, once the object's FINAL label
(after the merge across windows and the minimum size) is known:

1. :meth:`BandSplit.count` sweeps the final labels band by band (full width, top
   to bottom), holding rows from the top of the highest object not yet complete;
   each object is split when the rows of its crop have all arrived, and the first
   pixel of each part is noted (parts are numbered in raster order of their first
   pixel inside the object, so part 1 starts where the object does).
2. Every object, or each part of a split one, is numbered ``1..M`` in raster order
   of its first pixel: the order ``label()`` numbers in after its split.
3. :meth:`BandSplit.bands` sweeps again and yields each band with the new ids; a
   band waits until every split object crossing it is complete, and split objects
   are split again there (the same crop, so the same parts).

Memory: one band plus the tallest object's box plus ``2 * MARGIN_PX`` rows of final
labels, full width (4 bytes a pixel), and a few numbers per object and part. An object
taller than ``max_rows`` (:data:`MAX_SPLIT_ROWS` by default) is refused before anything
is swept.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

import numpy as np

from ..errors import InputError
from .split import MARGIN_PX, split_object

__all__ = ["MAX_SPLIT_ROWS", "BandSplit"]

#: The tallest object box (rows) a window-by-window split holds in memory, with a band.
MAX_SPLIT_ROWS = 4096


class BandSplit:
    """The watershed split of final labels that arrive as full-width bands.

    ``shape``: the image's (H, W); ``boxes`` (N + 1, 4) int64: each final object's
    bounding box (y0, x0, y1, x1, inclusive; row 0 unused); ``first`` (N + 1,) int64:
    the global raster index (``y * W + x``) of each object's first pixel. Call
    :meth:`count` with the bands, then :meth:`bands` with the same bands again.
    """

    def __init__(
        self,
        shape: tuple[int, int],
        boxes: np.ndarray,
        first: np.ndarray,
        max_rows: int = MAX_SPLIT_ROWS,
    ) -> None:
        self.shape, self.first = shape, np.asarray(first, np.int64)
        self.boxes = np.asarray(boxes, np.int64).reshape(-1, 4)
        heights = self.boxes[1:, 2] - self.boxes[1:, 0] + 1
        if heights.size and int(heights.max()) > max_rows:
            obj = int(np.argmax(heights)) + 1
            raise InputError(
                f"object {obj} is {int(heights.max())} rows tall; splitting objects window "
                f"by window holds an object's whole box in memory, at most {max_rows} rows; "
                "label without the split, or segment the image in memory",
                option="split",
            )
        h = shape[0]
        self.top = np.maximum(self.boxes[:, 0] - MARGIN_PX, 0)  # each crop's rows
        self.bottom = np.minimum(self.boxes[:, 2] + 1 + MARGIN_PX, h)
        self.parts: dict[int, np.ndarray] = {}  # split object -> first pixel of each part
        self.count_ = 0
        self._new: np.ndarray | None = None  # final id -> new id (unsplit objects)
        self._part_ids: dict[int, np.ndarray] = {}  # split object -> new id of each part

    def _crop(self, obj: int, buf: np.ndarray, start: int) -> tuple[np.ndarray, int, int]:
        """Object ``obj``'s crop of the rows in ``buf`` (image rows from ``start``), with
        the image row and column of its top-left pixel."""
        c0 = max(0, int(self.boxes[obj, 1]) - MARGIN_PX)
        c1 = min(self.shape[1], int(self.boxes[obj, 3]) + 1 + MARGIN_PX)
        t, b = int(self.top[obj]), int(self.bottom[obj])
        return buf[t - start : b - start, c0:c1], t, c0

    def _sweep(
        self, bands: Iterable[tuple[int, np.ndarray]], objects: np.ndarray
    ) -> Iterator[tuple[int, np.ndarray, list[tuple[int, np.ndarray | None, int, int]]]]:
        """Per band: (its top, its labels, the ``objects`` whose crop it completed, each as
        (id, its parts or None, crop row, crop column)); holds the rows those need."""
        order = objects[np.argsort(self.bottom[objects], kind="stable")]
        tops = self.top[order]
        suffix = np.minimum.accumulate(tops[::-1])[::-1] if order.size else tops
        buf = np.empty((0, self.shape[1]), np.uint32)
        start = end = i = 0
        for top, band in bands:
            buf = np.concatenate([buf, band.astype(np.uint32, copy=False)])
            end = top + band.shape[0]
            ready = []
            while i < order.size and self.bottom[order[i]] <= end:
                obj = int(order[i])
                crop, r0, c0 = self._crop(obj, buf, start)
                ready.append((obj, split_object(crop, obj), r0, c0))
                i += 1
            yield top, band, ready
            keep = min(int(suffix[i]) if i < order.size else end, end)
            buf, start = buf[keep - start :], keep

    def count(self, bands: Iterable[tuple[int, np.ndarray]]) -> int:
        """Sweep 1: split every object, note its parts' first pixels and number all the
        objects and parts (returns how many there are)."""
        width = self.shape[1]
        for _, _, ready in self._sweep(bands, np.arange(1, len(self.boxes))):
            for obj, parts, r0, c0 in ready:
                if parts is None:
                    continue
                ids, where = np.unique(parts, return_index=True)
                rows, cols = np.divmod(where[ids > 0], parts.shape[1])
                self.parts[obj] = (rows + r0) * np.int64(width) + cols + c0
        n = len(self.boxes) - 1
        flat = np.concatenate([self.first[1:]] + [self.parts[o][1:] for o in sorted(self.parts)])
        rank = np.empty(flat.size, np.int64)
        rank[np.argsort(flat, kind="stable")] = np.arange(1, flat.size + 1)
        self._new = np.zeros(n + 1, np.int64)
        self._new[1:] = rank[:n]
        extra = rank[n:]
        at = 0
        for o in sorted(self.parts):
            k = self.parts[o].size
            self._part_ids[o] = np.concatenate([[self._new[o]], extra[at : at + k - 1]])
            at += k - 1
        self.count_ = int(flat.size)
        return self.count_

    @property
    def dtype(self) -> np.dtype:
        """uint16 up to 65,535 objects and parts, else uint32 (as the labels TIFF)."""
        return np.dtype(np.uint16 if self.count_ <= np.iinfo(np.uint16).max else np.uint32)

    def bands(self, bands: Iterable[tuple[int, np.ndarray]]) -> Iterator[tuple[int, np.ndarray]]:
        """Sweep 2 (after :meth:`count`): (top, labels with the new ids) per band, in order."""
        if self._new is None:
            raise InputError("call count() with the bands before bands()")
        lut = self._new.astype(self.dtype)
        split = np.array(sorted(self.parts), np.int64)
        done: dict[int, tuple[np.ndarray, int, int]] = {}
        waiting: list[tuple[int, np.ndarray]] = []
        for _, _, ready in self._sweep(((t, b) for t, b in _queued(bands, waiting)), split):
            for obj, parts, r0, c0 in ready:
                assert parts is not None  # the same crop as in count(): split again
                done[obj] = (parts, r0, c0)
            while waiting and self._complete(waiting[0], split, done):
                top, band = waiting.pop(0)
                yield top, self._relabel(top, band, lut, done)
                for obj in [o for o in done if self.boxes[o, 2] < top + band.shape[0]]:
                    del done[obj]
        assert not waiting

    def _complete(
        self, item: tuple[int, np.ndarray], split: np.ndarray, done: Mapping[int, object]
    ) -> bool:
        """Whether every split object crossing the band ``item`` (top, labels) is split."""
        top, band = item
        crossing = split[
            (self.boxes[split, 0] < top + band.shape[0]) & (self.boxes[split, 2] >= top)
        ]
        return all(int(o) in done for o in crossing)

    def _relabel(
        self,
        top: int,
        band: np.ndarray,
        lut: np.ndarray,
        done: dict[int, tuple[np.ndarray, int, int]],
    ) -> np.ndarray:
        """``band`` (rows from ``top``) with new ids: by ``lut``, the split objects' parts by
        their maps in ``done``."""
        out = lut[band]
        h = band.shape[0]
        for obj, (parts, r0, c0) in done.items():
            a, b = max(top, r0), min(top + h, r0 + parts.shape[0])
            if a >= b:
                continue
            piece = parts[a - r0 : b - r0]
            view = out[a - top : b - top, c0 : c0 + piece.shape[1]]
            on = piece > 0
            view[on] = self._part_ids[obj].astype(out.dtype)[piece[on] - 1]
        return out


def _queued(
    bands: Iterable[tuple[int, np.ndarray]], waiting: list[tuple[int, np.ndarray]]
) -> Iterator[tuple[int, np.ndarray]]:
    """``bands``, each also appended to ``waiting`` (the bands not yet yielded) first."""
    for top, band in bands:
        waiting.append((top, band))
        yield top, band
