"""Images larger than memory: read windows, run the whole image's tile plan, write tile by tile.

Exactness comes from using the *whole* image's plan (``Segmenter.plan_for``):
every network tile has the same shape and the same origin, in the padded
coordinates of the whole image, as in the in-memory path, and its pixels are
the same, because a window is read with the whole image's mirror padding
(``cv2.BORDER_REFLECT`` == numpy ``"symmetric"``: padded pixel ``p`` is image
pixel ``p - halo`` reflected at the true image borders only). Normalisation
is per pixel, so normalising a window equals normalising the image. The
output is therefore bit-for-bit the in-memory result.

The output TIFF's tiles are multiples of the plan's stride, so each network
tile is computed once (the last tile of a row or column, which owns up to
``alignment - 1`` extra pixels, may be computed twice). Memory holds one
output tile and one batch of network tiles, independent of the image size.

:func:`run_region` is the shared kernel: it computes any rectangle of the
whole-image result from a window reader, and the Dask backend uses it too.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import io, processing, tiling
from .config import NormMode
from .errors import ConfigError

if TYPE_CHECKING:
    from .runtime import Segmenter

WindowReader = Callable[[tuple[int, int], tuple[int, int]], np.ndarray]
"""Reads image pixels ``[r0, r1) x [c0, c1)`` (inside the image) as an (h, w[, C]) array."""


def mirror_index(start: int, stop: int, size: int) -> np.ndarray:
    """Image indices of coordinates ``[start, stop)`` under symmetric (edge-repeating) reflection.

    The same as ``cv2.BORDER_REFLECT`` and numpy ``mode="symmetric"``, for any
    distance outside the image (period ``2 * size``).
    """
    m = np.mod(np.arange(start, stop), 2 * size)
    return np.where(m < size, m, 2 * size - 1 - m)


def read_padded(
    read: WindowReader,
    shape: tuple[int, int],
    halo: int,
    rows: tuple[int, int],
    cols: tuple[int, int],
) -> np.ndarray:
    """Padded-coordinate window ``[y0, y1) x [x0, x1)`` of the mirror-padded image.

    Reads only the image rectangle the window needs, then mirrors it.
    """
    ri = mirror_index(rows[0] - halo, rows[1] - halo, shape[0])
    ci = mirror_index(cols[0] - halo, cols[1] - halo, shape[1])
    r0, r1, c0, c1 = int(ri.min()), int(ri.max()) + 1, int(ci.min()), int(ci.max()) + 1
    block = read((r0, r1), (c0, c1))
    if r1 - r0 == len(ri) and c1 - c0 == len(ci) and ri[0] == r0 and ci[0] == c0:
        return block  # fully inside the image: no mirroring (and no copy)
    return block[np.ix_(ri - r0, ci - c0)]


def _overlapping(axis: tiling.AxisPlan, lo: int, hi: int) -> range:
    """Indices of the tiles whose owned interval meets ``[lo, hi)``."""
    ks = [k for k in range(axis.count) if axis.owned(k)[0] < hi and axis.owned(k)[1] > lo]
    return range(ks[0], ks[-1] + 1) if ks else range(0)


#: Activation-memory estimate for the tile choice of large images (real use is ~1.6x).
LARGE_MEMORY_BUDGET = 256 << 20


def check_pointwise(seg: Segmenter) -> None:
    """Refuse models whose normalisation needs statistics of the whole image."""
    if seg.info.normalization.mode is NormMode.PERCENTILE:
        raise ConfigError(
            "this model normalises each image by its percentiles, which needs the whole image; "
            "window-by-window (large image, Dask) inference needs a fixed-range or dtype-range "
            "normalisation"
        )


def run_region(
    seg: Segmenter,
    plan: tiling.TilePlan,
    read: WindowReader,
    rows: tuple[int, int],
    cols: tuple[int, int],
) -> np.ndarray:
    """Probabilities (K, r1-r0, c1-c0) float32 of one rectangle of the whole-image result.

    ``plan`` must be the whole image's plan; ``read`` reads raw image pixels.
    The network tiles are those of the plan whose owned area meets the
    rectangle, so the values equal whole-image (and in-memory) inference.
    """
    (r0, r1), (c0, c1) = rows, cols
    info = seg.info
    dest = np.empty((info.classes, r1 - r0, c1 - c0), np.float32)
    th, tw = plan.tile_shape
    tiles = [
        plan.tile(i, j) for i in _overlapping(plan.y, r0, r1) for j in _overlapping(plan.x, c0, c1)
    ]
    shape = (plan.height, plan.width)
    for b in range(0, len(tiles), seg.batch_size):
        group = tiles[b : b + seg.batch_size]
        batch = np.empty((len(group), info.channels, th, tw), np.float32)
        for n, t in enumerate(group):
            raw = read_padded(read, shape, plan.halo, (t.y, t.y + th), (t.x, t.x + tw))
            batch[n] = processing.normalize(raw, info.normalization, info.channels)
        tiling.stitch(dest, seg.run_batch(batch), plan, group, origin=(r0, c0))
    return dest


def output_tile(axis: tiling.AxisPlan, cap: int = 2048) -> int:
    """A TIFF tile side: a multiple of 16 (TIFF) and of the plan's stride (each tile runs once)."""
    if axis.count == 1:
        return min(-(-axis.size // 16) * 16, -(-cap // 16) * 16)
    return math.lcm(axis.stride, 16)


def segment_large(
    seg: Segmenter,
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    compression: str | None = "zlib",
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Segment a TIFF of any size into a tiled mask TIFF with memory independent of its size.

    Args:
        seg: an open Segmenter; its tile plan for the whole image is used.
        source: a single-image TIFF, (H, W) or (H, W, C). Uncompressed files
            are memory-mapped window by window; compressed or tiled ones are
            read through tifffile's zarr store.
        output: the mask TIFF to write (0/255 for two classes, class indices
            otherwise, as ``unet-edge run`` saves masks), uint8, tiled, with
            the Segmenter's provenance as JSON in its ImageDescription. Written
            to a temporary file and renamed: no partial file on failure.
        compression: TIFF compression of the output (None: uncompressed).
        progress: called as ``progress(done, total)`` after each output tile.

    Returns the output path. The result equals ``seg.segment(whole image)``.
    """
    check_pointwise(seg)
    src = io.TiffWindows(source)
    h, w = src.shape[0], src.shape[1]
    plan = seg.plan_for((h, w))
    ty, tx = output_tile(plan.y), output_tile(plan.x)
    total = -(-h // ty) * -(-w // tx)

    def tiles() -> Iterator[np.ndarray]:
        done = 0
        for r0 in range(0, h, ty):
            for c0 in range(0, w, tx):
                r1, c1 = min(r0 + ty, h), min(c0 + tx, w)
                probs = run_region(seg, plan, src.read, (r0, r1), (c0, c1))
                block = np.zeros((ty, tx), np.uint8)
                block[: r1 - r0, : c1 - c0] = processing.mask_to_image(
                    processing.to_mask(probs), seg.info.classes
                )
                done += 1
                if progress is not None:
                    progress(done, total)
                yield block

    prov: dict[str, Any] = {
        **seg.provenance(),
        "source": Path(source).name,
        "tile_plan": repr(plan),
    }
    return io.write_tiff_tiles(output, tiles(), (h, w), np.uint8, (ty, tx), prov, compression)
