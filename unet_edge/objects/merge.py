"""Labels exact at any size: label block by block, merge across the borders, number once.

A mask too large for memory (the windowed path) or cut into chunks (Dask) is
labelled one block at a time with :func:`unet_edge.objects.labels.label`. Each
block's local ids ``1..n`` become *provisional* global ids ``offset + 1 ..
offset + n`` (the offsets are the running total of the blocks before it), so
no two blocks share an id. Two provisional ids belong to one object when a
pixel of one is 4-adjacent to a pixel of the other across a block border: the
pixel pairs on every border (the facing rows or columns of the two blocks)
are collected and resolved by union-find (:func:`roots`), as dask-image's
``label`` does. Then every object gets its final id: objects are numbered
``1..N`` in raster order of their first (top-left-most) pixel, the order
:func:`~unet_edge.objects.labels.label` numbers a whole image in, after
``min_size`` has removed those with fewer pixels *in the whole image* (areas
are summed over the blocks first). The result is therefore identical, id for
id, to labelling the whole mask at once; the tests prove it on images built to
break it (a spiral, one component through every block, a 1-px diagonal line,
objects on block corners, odd block sizes).

Nothing here holds the whole image: a block's summary (:class:`BlockSummary`)
keeps two numbers per object plus the block's four edges (and, when measuring,
its :class:`~unet_edge.objects.measure.ObjectSums`), so memory grows with the
number of objects, not with the number of pixels. Writing the labels is a
second pass (:meth:`BlockMerge.relabel`): the same block is labelled again and
its local ids mapped through the final table.

Splitting touching objects by a watershed, and giving a border class back, need
the final labels: a second pass does them (:mod:`unet_edge.objects.second_pass`);
:class:`BlockMerge` keeps each object's bounding box for it (``boxes=True``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace

import cv2
import numpy as np

from ..errors import InputError
from .labels import label
from .measure import ObjectSums

#: The per-id arrays of :class:`~unet_edge.objects.measure.ObjectSums`.
_SUM_FIELDS = [
    f.name for f in fields(ObjectSums) if isinstance(getattr(ObjectSums(), f.name), np.ndarray)
]

#: (top, left, height, width) of a block in the whole image.
Region = tuple[int, int, int, int]


def check_local(split: str | None) -> None:
    """Refuse a split mode that block-wise labelling cannot reproduce exactly: none now;
    ``"watershed"`` splits each object from its own crop in a second pass
    (:mod:`unet_edge.objects.split_blocks`), so only an unknown mode is refused."""
    if split is not None:
        from ..config import look_up
        from .labels import Split

        look_up(Split, split, "split method")


@dataclass(frozen=True)
class BlockSummary:
    """What the merge needs of one labelled block (local ids ``1..n``).

    ``first`` (n,) int64: the global raster index (``y * W + x``) of each
    object's first pixel; ``count`` (n,) int64: its pixels in this block;
    ``top``/``bottom`` (w,) and ``left``/``right`` (h,) uint32: the local ids
    on the block's outer rows and columns.
    """

    region: Region
    n: int
    first: np.ndarray
    count: np.ndarray
    top: np.ndarray
    bottom: np.ndarray
    left: np.ndarray
    right: np.ndarray

    def edges(self) -> dict[str, np.ndarray]:
        """The local ids on the block's four outer sides."""
        return {"top": self.top, "bottom": self.bottom, "left": self.left, "right": self.right}


def summarize(local: np.ndarray, region: Region, width: int) -> BlockSummary:
    """The :class:`BlockSummary` of ``local`` (h, w) uint32 local ids ``1..n`` of block
    ``region`` of an image ``width`` pixels wide."""
    flat = local.ravel()
    where = np.flatnonzero(flat)
    ids = flat[where]
    n = int(ids.max()) if ids.size else 0
    # label() numbers in raster order of first pixels, so a first pixel is where the
    # running maximum of the ids met so far grows (one pass, no sort).
    grows = np.ones(ids.size, bool)
    if ids.size:
        grows[1:] = ids[1:] > np.maximum.accumulate(ids)[:-1]
    firsts = where[grows]
    if not np.array_equal(ids[grows], np.arange(1, n + 1)):  # numbered otherwise: sort
        firsts = where[np.unique(ids, return_index=True)[1]]
    top, left, _, w = region
    rows, cols = np.divmod(firsts, w)
    return BlockSummary(
        region,
        n,
        (rows + top) * np.int64(width) + cols + left,
        np.bincount(ids, minlength=n + 1)[1:].astype(np.int64),
        local[0].copy(),
        local[-1].copy(),
        local[:, 0].copy(),
        local[:, -1].copy(),
    )


def seam_pairs(a: np.ndarray, b: np.ndarray, offset_a: int, offset_b: int) -> np.ndarray:
    """Provisional id pairs (k, 2) int64 of facing pixels ``a[i]``, ``b[i]`` (local ids of two
    blocks, on either side of their common border) that are both objects; unique rows."""
    both = (a > 0) & (b > 0)
    if not both.any():
        return np.empty((0, 2), np.int64)
    pairs = np.stack([a[both].astype(np.int64) + offset_a, b[both].astype(np.int64) + offset_b], 1)
    return np.unique(pairs, axis=0)


def roots(n: int, pairs: np.ndarray) -> np.ndarray:
    """Union-find over ids ``0..n``: (n + 1,) int64, each id's root, the smallest id of its set.

    ``pairs`` (k, 2) are ids that belong together. Each round hooks the larger
    root of every unresolved pair under the smaller one, then flattens the
    forest by pointer jumping; a round leaves fewer roots, so it ends.
    """
    parent = np.arange(n + 1, dtype=np.int64)
    a, b = pairs[:, 0], pairs[:, 1]
    while True:
        ra, rb = parent[a], parent[b]
        open_ = ra != rb
        if not open_.any():
            return parent
        ra, rb = ra[open_], rb[open_]
        np.minimum.at(parent, np.maximum(ra, rb), np.minimum(ra, rb))
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped


@dataclass(frozen=True)
class Numbering:
    """The final ids: ``lut`` (n + 1,) uint32 maps each provisional id to its object's final
    id (0: background, or an object below ``min_size``); ``count`` objects remain, numbered
    ``1..count`` in raster order of their first pixel; ``root`` (n + 1,) int64 is each
    provisional id's union-find root."""

    lut: np.ndarray
    count: int
    root: np.ndarray
    first: np.ndarray | None = None  # (count + 1,) int64: each final id's first pixel
    boxes: np.ndarray | None = None  # (count + 1, 4) int64: y0, x0, y1, x1 (BlockMerge(boxes=))

    @property
    def dtype(self) -> np.dtype:
        """The smallest label type that holds every id: uint16 up to 65,535 objects, else uint32."""
        return np.dtype(np.uint16 if self.count <= np.iinfo(np.uint16).max else np.uint32)


def number(
    n: int, pairs: np.ndarray, first: np.ndarray, count: np.ndarray, min_size: int = 0
) -> Numbering:
    """Final ids of ``n`` provisional ids: ``first``/``count`` (n + 1,) int64 (index 0 unused)
    are each provisional id's first pixel (global raster index) and pixel count; ``pairs``
    join provisional ids; objects with fewer than ``min_size`` pixels in all are removed."""
    root = roots(n, pairs)
    big = np.iinfo(np.int64).max
    first_of = np.full(n + 1, big, np.int64)
    np.minimum.at(first_of, root[1:], first[1:])
    area = np.bincount(root[1:], weights=count[1:], minlength=n + 1)
    ids = np.arange(n + 1)
    kept = ids[(root == ids) & (area >= max(min_size, 1)) & (ids > 0)]
    kept = kept[np.argsort(first_of[kept], kind="stable")]
    final = np.zeros(n + 1, np.uint32)
    final[kept] = np.arange(1, kept.size + 1, dtype=np.uint32)
    return Numbering(final[root], int(kept.size), root, np.concatenate([[0], first_of[kept]]))


def number_grid(
    grid: Sequence[Sequence[BlockSummary]], min_size: int = 0
) -> tuple[list[list[int]], Numbering]:
    """Offsets (per block, rows x columns) and final ids of a grid of block summaries whose
    rows share their row boundaries and columns their column boundaries (Dask chunks)."""
    offsets: list[list[int]] = []
    total, pairs = 0, [np.empty((0, 2), np.int64)]
    for i, row in enumerate(grid):
        offsets.append([])
        for j, s in enumerate(row):
            offsets[i].append(total)
            if i:
                pairs.append(seam_pairs(grid[i - 1][j].bottom, s.top, offsets[i - 1][j], total))
            if j:
                pairs.append(seam_pairs(row[j - 1].right, s.left, offsets[i][j - 1], total))
            total += s.n
    blocks = [s for row in grid for s in row]
    first = np.concatenate([np.zeros(1, np.int64), *(s.first for s in blocks)])
    count = np.concatenate([np.zeros(1, np.int64), *(s.count for s in blocks)])
    return offsets, number(total, np.concatenate(pairs), first, count, min_size)


@dataclass
class BlockMerge:
    """Label a (H, W) boolean mask block by block with global ids equal to whole-image labels,
    and optionally measure the objects on the way (:class:`~unet_edge.objects.measure.ObjectSums`).

    Blocks come row by row, left to right, and tile the image: the blocks of
    one row share their top and height, and each row's blocks cover the width
    from column 0. :meth:`add` labels (and measures) one block; :meth:`finish`
    merges and numbers; :meth:`relabel` then gives each block's final labels (a
    second pass over the same blocks, in any order) and :meth:`sums` the
    measurements by final id. Memory: per block, one summary (a few numbers per
    object and the block's edges); one row of the image's width.

    ``measure``: accumulate the sums; ``channels``: of the raw intensities.
    """

    shape: tuple[int, int]
    min_size: int = 0
    measure: bool = False
    channels: int = 1
    boxes: bool = False  # keep each object's bounding box (Numbering.boxes: for a split)
    blocks: dict[Region, int] = field(default_factory=dict)  # region -> offset
    numbering: Numbering | None = None
    _parts: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # first, count
    _pairs: list[np.ndarray] = field(default_factory=list)
    _window_sums: list[ObjectSums] = field(default_factory=list)
    _boxes: list[np.ndarray] = field(default_factory=list)  # (n, 4) per block, image rows/cols
    # provisional ids of object pixels facing an object across a border above (y) or on the
    # left (x): each block counted an edge there that is none
    _seams: dict[str, list[np.ndarray]] = field(default_factory=lambda: {"y": [], "x": []})
    _n: int = 0
    _next: tuple[int, int] = (0, 0)  # the next block's top and left
    _height: int = 0  # the current row of blocks' height
    _above: np.ndarray | None = None  # provisional ids of the row above the current blocks
    _left: np.ndarray | None = None  # provisional ids of the column left of the next block

    def add(
        self,
        region: Region,
        mask: np.ndarray,
        *,
        prob: np.ndarray | None = None,
        raw: np.ndarray | None = None,
    ) -> np.ndarray:
        """Label (and measure) ``mask`` (h, w) bool, block ``region`` = (top, left, h, w);
        returns its local ids (h, w) uint32. ``prob`` (h, w): each pixel's probability of
        being an object; ``raw`` (h, w[, C]): its raw intensity (for the measurements)."""
        self._check_next(region, mask)
        local = label(mask)
        s = summarize(local, region, self.shape[1])
        offset = self._n
        self._join(s, offset)
        self.blocks[region] = offset
        self._parts.append((s.first, s.count))
        self._n += s.n
        if self.boxes:
            self._boxes.append(_block_boxes(mask, region))
        if self.measure:
            self._window_sums.append(self._measure(local, s, prob, raw))
        return local

    def _measure(
        self, local: np.ndarray, s: BlockSummary, prob: np.ndarray | None, raw: np.ndarray | None
    ) -> ObjectSums:
        """One block's sums by local id, as if it were alone: every pixel on its sides counts
        an edge outwards (so its bounding box sees them); :meth:`_join` notes which of those
        edges face an object across the border and are none."""
        top, left = s.region[:2]
        return ObjectSums(self.channels).add(local, top, left, prob=prob, raw=raw)

    def _check_next(self, region: Region, mask: np.ndarray) -> None:
        """Refuse a block that is not the next one of a grid in raster order."""
        top, left, h, w = region
        (H, W), (want_top, want_left) = self.shape, self._next
        row_height = self._height if left else h
        ok = (top, left) == (want_top, want_left) and h == row_height and 0 < w <= W - left
        if not ok or h <= 0 or top + h > H or mask.shape != (h, w) or self.numbering is not None:
            raise InputError(
                f"block {region} of mask shape {mask.shape} is not the next block of the "
                f"{H}x{W} grid (expected top {want_top}, left {want_left}"
                + (f", height {row_height}" if left else "")
                + "); give blocks row by row, left to right, before finish()"
            )
        self._height = h
        self._next = (top, left + w) if left + w < W else (top + h, 0)

    def _join(self, s: BlockSummary, offset: int) -> None:
        """Pairs across this block's top and left borders; keep its bottom and right edges."""
        top, left, _, w = s.region
        if self._above is None:
            self._above = np.zeros(self.shape[1], np.int64)
        mine = {k: np.where(e > 0, e.astype(np.int64) + offset, 0) for k, e in s.edges().items()}
        seams = []
        if top > 0:
            seams.append(("y", self._above[left : left + w], mine["top"]))
        if left > 0 and self._left is not None:
            seams.append(("x", self._left, mine["left"]))
        for axis, a, b in seams:
            self._pairs.append(seam_pairs(a, b, 0, 0))
            if self.measure:
                both = (a > 0) & (b > 0)
                self._seams[axis] += [a[both], b[both]]
        self._left = mine["right"]
        self._above[left : left + w] = mine["bottom"]

    def finish(self) -> Numbering:
        """Merge across the borders and number the objects (after the last block)."""
        if self._next != (self.shape[0], 0) and self.shape[0] > 0:
            raise InputError(
                f"the blocks cover the {self.shape[0]}x{self.shape[1]} mask only up to row "
                f"{self._next[0]}, column {self._next[1]}; add every block before finish()"
            )
        if self.numbering is None:
            pairs = np.concatenate([np.empty((0, 2), np.int64), *self._pairs])
            first = np.concatenate([np.zeros(1, np.int64), *(f for f, _ in self._parts)])
            count = np.concatenate([np.zeros(1, np.int64), *(c for _, c in self._parts)])
            self.numbering = number(self._n, pairs, first, count, self.min_size)
            if self.boxes:
                self.numbering = _with_boxes(self.numbering, self._boxes)
            self._pairs, self._above, self._left, self._parts = [], None, None, []
        return self.numbering

    def sums(self) -> ObjectSums:
        """The measurement sums by final id (after :meth:`finish`; needs ``measure``)."""
        numbering = self.finish()
        if not self.measure:
            raise InputError("this merge was made without measure=True; it has no sums")
        return final_sums(self._window_sums, self._seams, numbering, self.channels)

    def relabel(self, region: Region, mask: np.ndarray) -> np.ndarray:
        """Final labels (h, w) of block ``region`` (as given to :meth:`add`), of dtype
        :attr:`Numbering.dtype`, from the same ``mask`` labelled again."""
        numbering = self.finish()
        if region not in self.blocks:
            raise InputError(f"block {region} was not added; relabel the blocks given to add()")
        return apply(label(mask), self.blocks[region], numbering)


def _block_boxes(mask: np.ndarray, region: Region) -> np.ndarray:
    """(n, 4) int64 bounding boxes (y0, x0, y1, x1, inclusive, in the image) of the objects
    of one block, by local id (as :func:`~unet_edge.objects.labels.label` numbers them)."""
    _, _, stats, _ = cv2.connectedComponentsWithStats(
        np.ascontiguousarray(mask).view(np.uint8), connectivity=4, ltype=cv2.CV_32S
    )
    x, y, w, h = (stats[1:, i].astype(np.int64) for i in range(4))
    return np.stack([y + region[0], x + region[1], y + h - 1 + region[0], x + w - 1 + region[1]], 1)


def _with_boxes(numbering: Numbering, parts: Sequence[np.ndarray]) -> Numbering:
    """``numbering`` with each final object's bounding box, from each block's (offsets in
    order: the blocks' provisional ids 1..n in the order they were added)."""
    boxes = np.concatenate([np.zeros((1, 4), np.int64), *parts])
    out = np.zeros((numbering.count + 1, 4), np.int64)
    out[:, :2] = np.iinfo(np.int64).max
    final = numbering.lut.astype(np.intp)
    kept = final > 0
    for i, ufunc in enumerate((np.minimum, np.minimum, np.maximum, np.maximum)):
        ufunc.at(out[:, i], final[kept], boxes[kept, i])
    return replace(numbering, boxes=out)


def final_sums(
    windows: Sequence[ObjectSums],
    seams: Mapping[str, Sequence[np.ndarray]],
    numbering: Numbering,
    channels: int,
) -> ObjectSums:
    """The sums by final id from each block's sums by local id (blocks in the order of their
    offsets); ``seams["y"]``/``["x"]``: provisional ids of the pixels that counted an edge
    on a block border above/beside them where an object pixel faces them (one each)."""
    joined = ObjectSums(channels)
    for name in _SUM_FIELDS:
        parts = [getattr(joined, name)[:1], *(getattr(w, name)[1:] for w in windows)]
        setattr(joined, name, np.concatenate(parts))
    joined.with_prob = any(w.with_prob for w in windows)
    joined.with_raw = any(w.with_raw for w in windows)
    if joined.size != numbering.lut.size:
        raise InputError(f"sums of {joined.size - 1} objects for {numbering.lut.size - 1} ids")
    for axis in ("y", "x"):
        none = np.concatenate([np.empty(0, np.int64), *seams[axis]])
        getattr(joined, f"edges_{axis}")[:] -= np.bincount(none, minlength=joined.size)
    out = joined.relabel(numbering.lut)  # objects below min_size land on id 0...
    return out.relabel(np.arange(out.size))  # ...which a relabel never copies: emptied


def apply(local: np.ndarray, offset: int, numbering: Numbering) -> np.ndarray:
    """Final labels of a block from its local ids (h, w) and its offset, as ``numbering.dtype``."""
    n = int(local.max(initial=0))
    table = numbering.lut[offset : offset + n + 1].astype(numbering.dtype)
    if table.size != n + 1:
        raise InputError(
            f"a block holds {n} objects, more than when it was first labelled; relabel the "
            "same mask that was added"
        )
    table[0] = 0
    return table[local]


def label_blocks(
    mask: np.ndarray, rows: Sequence[int], cols: Sequence[int], min_size: int = 0
) -> np.ndarray:
    """``mask`` (H, W) bool labelled block by block, blocks of ``rows`` x ``cols`` pixels (the
    sizes of each row and column of blocks), then merged: equals ``label(mask, min_size=...)``.

    Holds the whole labels image: for testing and for masks that fit in memory.
    """
    merge = BlockMerge(mask.shape[:2], min_size)
    regions = [
        (t, lf, h, w)
        for t, h in zip(np.cumsum([0, *rows[:-1]]), rows, strict=True)
        for lf, w in zip(np.cumsum([0, *cols[:-1]]), cols, strict=True)
    ]
    for t, lf, h, w in regions:
        merge.add((int(t), int(lf), int(h), int(w)), mask[t : t + h, lf : lf + w])
    numbering = merge.finish()
    out = np.zeros(mask.shape[:2], numbering.dtype)
    for t, lf, h, w in regions:
        region = (int(t), int(lf), int(h), int(w))
        out[t : t + h, lf : lf + w] = merge.relabel(region, mask[t : t + h, lf : lf + w])
    return out
