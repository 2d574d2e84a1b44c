"""Overlap-tile geometry and the one kernel: plan, read mirrored windows, prepare, infer, stitch.

Pure functions over numpy arrays; no inference backend is imported here, so
the same code tiles for ONNX Runtime, for the PyTorch baseline and for Dask.
:class:`TileRun` is the kernel every path uses: a window reader (an array, a
memory-mapped or compressed TIFF, a Dask block, a camera frame) gives the
tiles' mirrored windows, a prepare step normalises them, a predictor runs
batches and each output tile is stitched exactly into its region.

Coordinates: the image is mirror-padded by ``halo`` pixels on the top/left
(and as much as the last tile needs on the bottom/right), so padded pixel
``p`` is image pixel ``p - halo``. Tile ``k`` along an axis reads padded
pixels ``[k*stride, k*stride + tile)`` and its useful output covers image
pixels ``[k*stride, k*stride + out)``. The stride is a multiple of the
network's alignment (``2**depth``), which makes every tile see the same
pooling grid as a single pass over the whole padded image: the stitched
result equals whole-image inference, with no blending.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .errors import ConfigError, InputError, ModelError, NonFiniteError
from .geometry import Geometry, TileGeometry

#: Any size rules the kernel can tile with: a U-Net's, or numbers probed from a foreign graph.
AnyGeometry = Geometry | TileGeometry

#: The project's single border convention (see :class:`unet_edge.config.BorderMode`).
CV2_BORDER = cv2.BORDER_REFLECT

# Large tiles waste less work on halos (ISBI model, 4096x4096: 1.31x the output area with
# 1564 tiles vs 1.55x with 1020) and ran ~15% faster in the tile sweep; the memory budget,
# not this cap, is what keeps them affordable. The one cap every path uses.
DEFAULT_MAX_TILE = 2048

Predictor = Callable[[np.ndarray], np.ndarray]
"""Maps a float32 batch (N, C, th, tw) to the network's output (N, K, oh, ow)."""


@dataclass(frozen=True)
class AxisPlan:
    """Tiling of one axis. All numbers in pixels."""

    size: int  # image extent
    tile: int  # tile input extent
    out: int  # useful output extent of one tile
    stride: int  # distance between tile origins (a multiple of the alignment)
    origins: tuple[int, ...]  # tile origins in padded coordinates == output origins in the image
    pad_before: int  # mirror padding before the image (the halo)
    pad_after: int  # mirror padding after the image

    @property
    def count(self) -> int:
        return len(self.origins)

    def owned(self, k: int) -> tuple[int, int]:
        """Image interval ``[start, stop)`` that tile ``k`` writes when stitching."""
        start = self.origins[k]
        stop = self.size if k == self.count - 1 else start + self.stride
        return start, stop


@dataclass(frozen=True)
class Tile:
    """One tile: its position in the plan, where it reads and where it writes."""

    index: int
    row: int  # tile row in the grid
    col: int  # tile column in the grid
    y: int  # origin in padded coordinates (== first output row in the image)
    x: int
    out_y: tuple[int, int]  # image rows [start, stop) this tile writes
    out_x: tuple[int, int]


@dataclass(frozen=True)
class TilePlan:
    """Where every tile of an image goes, computed once without touching pixels."""

    height: int
    width: int
    y: AxisPlan
    x: AxisPlan
    halo: int
    crop: int  # pixels to drop from each side of the network's raw output (same padding)
    alignment: int

    @property
    def tile_shape(self) -> tuple[int, int]:
        return self.y.tile, self.x.tile

    @property
    def padded_shape(self) -> tuple[int, int]:
        return (
            self.y.pad_before + self.height + self.y.pad_after,
            self.x.pad_before + self.width + self.x.pad_after,
        )

    @property
    def n_tiles(self) -> int:
        return self.y.count * self.x.count

    def tile(self, row: int, col: int) -> Tile:
        """The tile at grid position (``row``, ``col``)."""
        return Tile(
            row * self.x.count + col,
            row,
            col,
            self.y.origins[row],
            self.x.origins[col],
            self.y.owned(row),
            self.x.owned(col),
        )

    def tiles(self) -> Iterator[Tile]:
        for r in range(self.y.count):
            for c in range(self.x.count):
                yield self.tile(r, c)

    def computed_pixels(self) -> int:
        """Input pixels the network processes for this image (a proxy for its cost)."""
        return self.n_tiles * self.y.tile * self.x.tile

    def __repr__(self) -> str:
        return (
            f"TilePlan(image={self.height}x{self.width}, tile={self.y.tile}x{self.x.tile}, "
            f"out={self.y.out}x{self.x.out}, stride={self.y.stride}x{self.x.stride}, "
            f"grid={self.y.count}x{self.x.count}, halo={self.halo}, align={self.alignment})"
        )


def _plan_axis(size: int, tile: int, geometry: AnyGeometry, axis: str) -> AxisPlan:
    # No tile larger than needed to cover the whole axis in one pass.
    tile = min(tile, geometry.input_for_output(size))
    out = geometry.output_size(tile)
    stride = geometry.stride(tile)
    if size <= out:
        count = 1
    elif stride == 0:
        smallest = geometry.input_for_output(geometry.alignment)
        raise ConfigError(
            f"tile {tile} gives {out} output px along {axis}, less than the alignment "
            f"{geometry.alignment}, so tiles cannot be stitched exactly; use a tile of at least "
            f"{smallest}"
        )
    else:
        count = 1 + -(-(size - out) // stride)
    origins = tuple(k * stride for k in range(count))
    padded = origins[-1] + tile
    return AxisPlan(size, tile, out, stride, origins, geometry.halo, padded - geometry.halo - size)


def _is_int(v: object) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _as_pair(tile: int | Sequence[int]) -> tuple[int, int]:
    if _is_int(tile):
        return int(tile), int(tile)  # type: ignore[arg-type]
    ok = isinstance(tile, (tuple, list)) and len(tile) == 2 and all(map(_is_int, tile))
    if not ok:
        raise ConfigError(
            f"tile must be an integer or (height, width) integers, got {tile!r}", option="tile"
        )
    return int(tile[0]), int(tile[1])  # type: ignore[index]


def image_size(shape: object) -> tuple[int, int]:
    """An image's (height, width) from ``shape`` (its first two numbers); refuses an empty one."""
    ok = isinstance(shape, (tuple, list)) and len(shape) >= 2 and all(map(_is_int, shape[:2]))
    if not ok:
        raise InputError(f"an image shape is (height, width) integers, got {shape!r}")
    h, w = int(shape[0]), int(shape[1])  # type: ignore[index]
    if h < 1 or w < 1:
        raise InputError(f"the image is empty: it has shape {tuple(shape)}, with no pixels")  # type: ignore[arg-type]
    return h, w


def plan(shape: tuple[int, int], geometry: AnyGeometry, tile: int | Sequence[int]) -> TilePlan:
    """Plan the tiles for an image of ``shape`` = (height, width).

    ``tile`` is the tile's input size (an int or (height, width)); each must
    be legal for ``geometry``. Along an axis shorter than one tile's output
    the tile shrinks to the smallest legal size that covers it.
    """
    h, w = image_size(shape)
    th, tw = (geometry.check_tile(t) for t in _as_pair(tile))
    return TilePlan(
        h,
        w,
        _plan_axis(h, th, geometry, "height"),
        _plan_axis(w, tw, geometry, "width"),
        geometry.halo,
        geometry.crop,
        geometry.alignment,
    )


def whole_image_plan(shape: tuple[int, int], geometry: AnyGeometry) -> TilePlan:
    """A plan with one tile covering the whole image: the reference tiling must equal."""
    h, w = shape
    return plan(shape, geometry, (geometry.input_for_output(h), geometry.input_for_output(w)))


def choose_tile(
    shape: tuple[int, int],
    geometry: AnyGeometry,
    max_tile: int = DEFAULT_MAX_TILE,
    *,
    tile_bytes: Callable[[int, int], int] | None = None,
    memory_budget: int | None = None,
) -> tuple[int, int]:
    """Pick the tile (height, width) that processes the fewest pixels for this image.

    Cost model: the network's work is proportional to the input pixels of
    all tiles, ``n_tiles * tile_h * tile_w``; halos make small tiles
    wasteful (572->388 computes 1.36x the output area per tile in input
    pixels... and more at the borders), while a tile much larger than the
    image wastes mirrored pixels. ``max_tile`` bounds the side (memory).
    Ties go to the fewer, larger tiles (less per-call overhead).

    Memory: with ``tile_bytes`` (tile height, width -> bytes of one inference
    call, e.g. :func:`unet_edge.cost.activation_bytes` for the architecture
    and batch size) and ``memory_budget``, tiles whose estimate exceeds the
    budget are not considered; :class:`ConfigError` if even the smallest is
    too big.
    """
    cands = geometry.legal_inputs(max(max_tile, geometry.min_input))
    cands = [t for t in cands if geometry.stride(t) > 0] or cands[-1:]
    per_axis = []
    for size in shape:
        costs = {}
        for t in cands:
            ap = _plan_axis(size, t, geometry, "axis")
            costs[ap.tile] = (ap.count * ap.tile, ap.count)
        per_axis.append(costs)
    keys = sorted(
        (cy * cx, ny * nx, ty, tx)
        for ty, (cy, ny) in per_axis[0].items()
        for tx, (cx, nx) in per_axis[1].items()
    )
    if tile_bytes is None or memory_budget is None:
        return keys[0][2], keys[0][3]
    for key in keys:  # cheapest first: the first that fits is the answer
        if tile_bytes(key[2], key[3]) <= memory_budget:
            return key[2], key[3]
    need, ty, tx = min((tile_bytes(k[2], k[3]), k[2], k[3]) for k in keys)
    raise ConfigError(
        f"no legal tile fits the memory budget of {memory_budget / 2**20:.0f} MiB: the "
        f"smallest, {ty}x{tx}, needs about {need / 2**20:.0f} MiB; raise the budget or lower "
        "the batch size"
    )


WindowReader = Callable[[int, int, int, int], np.ndarray]
"""Reads the image rectangle ``(top, left, height, width)`` (inside the image) as raw pixels.

The result is ``(height, width)`` or ``(height, width, C)`` in the image's own
dtype, as files and cameras give frames: an array view, a memory map, a TIFF
window, a Dask block. The kernel mirrors, normalises and cuts from it.
"""

Prepare = Callable[[np.ndarray], np.ndarray]
"""Turns a raw window (h, w[, C]) into the network's float32 (C, h, w) input."""

Region = tuple[int, int, int, int]
"""An image rectangle ``(top, left, height, width)``."""


def array_reader(image: np.ndarray) -> WindowReader:
    """A window reader over an in-memory (or memory-mapped) (H, W[, C]) array: views, no copies."""

    def read(top: int, left: int, height: int, width: int) -> np.ndarray:
        return image[top : top + height, left : left + width]

    return read


def mirror_index(start: int, stop: int, size: int) -> np.ndarray:
    """Image indices of coordinates ``[start, stop)`` under symmetric (edge-repeating) reflection.

    The same as ``cv2.BORDER_REFLECT`` and numpy ``mode="symmetric"``, for any
    distance outside the image (period ``2 * size``).
    """
    m = np.mod(np.arange(start, stop), 2 * size)
    return np.where(m < size, m, 2 * size - 1 - m)


def read_mirrored(
    read: WindowReader,
    shape: tuple[int, int],
    halo: int,
    top: int,
    left: int,
    size: tuple[int, int],
) -> np.ndarray:
    """Window ``(top, left)`` of ``size`` in *padded* coordinates of the mirror-padded image.

    Padded pixel ``p`` is image pixel ``p - halo``, reflected at the image's
    borders (:data:`CV2_BORDER`). Reads only the image rectangle the window
    needs; a window inside the image is returned as the reader gives it.
    """
    ri = mirror_index(top - halo, top - halo + size[0], shape[0])
    ci = mirror_index(left - halo, left - halo + size[1], shape[1])
    r0, c0 = int(ri.min()), int(ci.min())
    h, w = int(ri.max()) + 1 - r0, int(ci.max()) + 1 - c0
    block = read(r0, c0, h, w)
    if h == len(ri) and w == len(ci) and ri[0] == r0 and ci[0] == c0:
        return block  # inside the image: no mirroring, no copy
    return block.take(ri - r0, axis=0).take(ci - c0, axis=1)  # 2x faster than np.ix_


def stitch(
    dest: np.ndarray,
    outputs: np.ndarray,
    tile_plan: TilePlan,
    tiles: Sequence[Tile],
    origin: tuple[int, int] = (0, 0),
) -> None:
    """Write each tile's owned region of ``outputs`` (N, K, oh, ow) into ``dest`` (K, h, w).

    ``dest`` holds the image rectangle whose top-left pixel is ``origin``
    (the whole image by default); each tile writes the part of its owned
    region that falls inside it.
    """
    c = tile_plan.crop
    oy, ox = origin
    h, w = dest.shape[1:]
    for t, o in zip(tiles, outputs, strict=True):
        y0, y1 = max(t.out_y[0], oy), min(t.out_y[1], oy + h)
        x0, x1 = max(t.out_x[0], ox), min(t.out_x[1], ox + w)
        if y0 < y1 and x0 < x1:
            dest[:, y0 - oy : y1 - oy, x0 - ox : x1 - ox] = o[
                :, c + y0 - t.y : c + y1 - t.y, c + x0 - t.x : c + x1 - t.x
            ]


def _overlapping(axis: AxisPlan, lo: int, hi: int) -> range:
    """Indices of the tiles whose owned interval meets ``[lo, hi)``."""
    ks = [k for k in range(axis.count) if axis.owned(k)[0] < hi and axis.owned(k)[1] > lo]
    return range(ks[0], ks[-1] + 1) if ks else range(0)


class TileRun:
    """The one overlap-tile kernel: read mirrored windows -> prepare -> infer -> stitch.

    Computes the probabilities (K, h, w) of ``region`` (default: the whole
    image) of the result that ``plan`` defines for the whole image. Every
    path uses it: in memory (a reader over an array), streamed frames,
    larger-than-memory files and Dask blocks (readers over windows), the
    benchmark, int8 calibration and training validation. Because the tiles
    are always the whole image's tiles, any region equals the same rectangle
    of whole-image inference, bit for bit.

    The three steps are separate methods so a pipeline can run them on
    different threads (:mod:`unet_edge.paths.stream`); :meth:`run` chains them.
    """

    def __init__(
        self,
        plan: TilePlan,
        read: WindowReader,
        prepare: Prepare,
        classes: int,
        batch_size: int = 1,
        region: Region | None = None,
    ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.plan, self.read, self.prepare = plan, read, prepare
        self.batch_size = batch_size
        self.region: Region = region or (0, 0, plan.height, plan.width)
        top, left, h, w = self.region
        self.tiles = [
            plan.tile(i, j)
            for i in _overlapping(plan.y, top, top + h)
            for j in _overlapping(plan.x, left, left + w)
        ]
        self.result = np.empty((classes, h, w), np.float32)

    def batches(self, reuse: bool = True) -> Iterator[tuple[list[Tile], np.ndarray]]:
        """(tiles, float32 (N, C, th, tw) batch) pairs; ``reuse``: one buffer for all batches."""
        p = self.plan
        buf = np.empty((0,), np.float32)
        for b in range(0, len(self.tiles), self.batch_size):
            group = self.tiles[b : b + self.batch_size]
            for i, t in enumerate(group):  # each window straight into the batch
                raw = read_mirrored(self.read, (p.height, p.width), p.halo, t.y, t.x, p.tile_shape)
                try:
                    x = self.prepare(raw)
                except NonFiniteError as e:
                    raise _in_image(e, p, t, raw) from None
                if i == 0 and (not reuse or len(buf) < len(group)):
                    buf = np.empty((len(group), *x.shape), np.float32)
                buf[i] = x
            yield group, buf[: len(group)]

    def stitch(self, tiles: Sequence[Tile], outputs: np.ndarray) -> None:
        """Write the network's outputs (N, K, oh, ow) for ``tiles`` into :attr:`result`."""
        p, k = self.plan, self.result.shape[0]
        want = (len(tiles), k, *(t - 2 * (p.halo - p.crop) for t in p.tile_shape))
        if getattr(outputs, "shape", None) != want:
            raise ModelError(
                f"the model gave output of shape {getattr(outputs, 'shape', None)} for "
                f"{len(tiles)} tile(s) of {p.y.tile}x{p.x.tile}, expected {want} ({k} classes, "
                f"halo {p.halo}); the graph does not match its metadata"
            )
        stitch(self.result, outputs, self.plan, tiles, origin=(self.region[0], self.region[1]))

    def run(self, predict: Predictor) -> np.ndarray:
        """All batches through ``predict``, stitched: the region's probabilities (K, h, w)."""
        for group, batch in self.batches():
            self.stitch(group, predict(batch))
        return self.result


def _in_image(e: NonFiniteError, p: TilePlan, t: Tile, raw: np.ndarray) -> NonFiniteError:
    """``e`` (about a tile's window) restated in image coordinates, with the raw value."""
    c, r, col = e.first
    y = int(mirror_index(t.y - p.halo + r, t.y - p.halo + r + 1, p.height)[0])
    x = int(mirror_index(t.x - p.halo + col, t.x - p.halo + col + 1, p.width)[0])
    value = raw[r, col] if raw.ndim == 2 else raw[r, col, c]
    rows = f"{max(t.y - p.halo, 0)}..{min(t.y - p.halo + p.y.tile, p.height) - 1}"
    cols = f"{max(t.x - p.halo, 0)}..{min(t.x - p.halo + p.x.tile, p.width) - 1}"
    fix = (
        "the image holds NaN or infinite pixels; replace them (e.g. np.nan_to_num)"
        if not np.isfinite(value)
        else "its values overflow float32 once scaled; rescale the image (e.g. to 0..1) first"
    )
    return NonFiniteError(
        f"{e.count} value(s) are not finite after normalisation in the tile over image rows "
        f"{rows}, columns {cols}; the first at row {y}, column {x}"
        f"{f', channel {c}' if raw.ndim == 3 else ''} (raw value {float(value):.7g}): {fix}",
        count=e.count,
        first=(c, y, x),
    )


#: The dihedral group D4 as (quarter turns, mirrored first): the 8 flips and rotations.
DIHEDRAL = tuple((k, flip) for k in range(4) for flip in (False, True))


def dihedral_average(predict: Predictor) -> Predictor:
    """Test-time augmentation: ``predict`` averaged over the 8 flips and rotations of each tile.

    Each batch (N, C, th, tw) is mirrored and/or turned (:data:`DIHEDRAL`; a
    quarter turn gives (N, C, tw, th), legal whenever the tile is), run, turned
    back and the 8 outputs (N, K, oh, ow) are averaged in float32. Tiles are
    legal and start at multiples of the alignment, and all legal sizes of an
    axis differ by multiples of it, so a mirrored tile is a tile of the
    mirrored whole padded image at an aligned origin too: the stitched result
    equals the same average over whole-image passes. The 8 runs are sequential,
    so a call needs no more memory than one run (plus the sum).
    """

    def averaged(batch: np.ndarray) -> np.ndarray:
        total = np.array(_dihedral_pass(predict, batch, *DIHEDRAL[0]), np.float32)
        for k, flip in DIHEDRAL[1:]:
            total += _dihedral_pass(predict, batch, k, flip)
        total /= len(DIHEDRAL)
        return total

    return averaged


def _dihedral_pass(predict: Predictor, batch: np.ndarray, k: int, flip: bool) -> np.ndarray:
    """``predict`` on the batch mirrored (``flip``, along the width) then turned ``k`` quarter
    turns, and its output brought back to the batch's orientation (a view)."""
    x = np.rot90(batch[..., ::-1] if flip else batch, k, axes=(2, 3))
    y = np.rot90(predict(np.ascontiguousarray(x)), -k, axes=(2, 3))
    return y[..., ::-1] if flip else y


def _chw_to_float(window: np.ndarray) -> np.ndarray:
    return np.moveaxis(window, -1, 0).astype(np.float32)


def run_tiled(
    image: np.ndarray, tile_plan: TilePlan, predictor: Predictor, classes: int, batch_size: int = 1
) -> np.ndarray:
    """Overlap-tile inference of an already normalised float32 (C, H, W) image -> (K, H, W)."""
    hwc = np.moveaxis(image, 0, -1)
    run = TileRun(tile_plan, array_reader(hwc), _chw_to_float, classes, batch_size)
    return run.run(predictor)
