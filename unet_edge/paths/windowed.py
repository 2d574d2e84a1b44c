"""Images larger than memory: read windows, run the whole image's tile plan, write band by band.

Exactness comes from using the *whole* image's plan (``Segmenter.plan_for``):
every network tile has the same shape and the same origin, in the padded
coordinates of the whole image, as in the in-memory path, and its pixels are
the same, because a window is read with the whole image's mirror padding
(``cv2.BORDER_REFLECT`` == numpy ``"symmetric"``: padded pixel ``p`` is image
pixel ``p - halo`` reflected at the true image borders only), and every
window is normalised with the whole image's scaling, measured once on a
strided subsample of the file (:func:`unet_edge.processing.stat_sample`, the
same pixels the in-memory path measures). The output is therefore bit-for-bit
the in-memory result.

The output is computed in windows whose sides are multiples of the plan's
stride, so each network tile is computed once (the last tile of a row or
column, which owns up to ``alignment - 1`` extra pixels, may be computed
twice), a band of windows at a time from the top; each band of rows is one
strip of the output TIFF, written as soon as it is complete (strips, not
tiles: ImageJ 1.x cannot read tiled TIFFs). Memory holds one band of the mask
and one batch of network tiles, independent of the image's height.

:func:`run_region` computes any rectangle of the whole-image result from a
window reader with the one kernel (:class:`unet_edge.tiling.TileRun`); the
Dask backend uses it too.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import io, processing, tiling

if TYPE_CHECKING:
    from ..runtime import Segmenter

#: Activation-memory estimate for the tile choice of large images (real use is ~1.6x).
LARGE_MEMORY_BUDGET = 256 << 20


def run_region(
    seg: Segmenter,
    plan: tiling.TilePlan,
    read: tiling.WindowReader,
    region: tiling.Region,
    scaling: processing.Scaling,
) -> np.ndarray:
    """Probabilities (K, h, w) float32 of ``region`` (top, left, h, w) of the whole-image result.

    ``plan`` must be the whole image's plan, ``read`` reads raw image pixels
    and ``scaling`` is the whole image's (:meth:`Segmenter.scaling_for` on the
    image), so the values equal whole-image (and in-memory) inference.
    """
    return seg.tile_run(plan, read, scaling, region).run(seg.predict_batch)


def output_tile(axis: tiling.AxisPlan, cap: int = 2048) -> int:
    """An output window's side: a multiple of 16 and of the plan's stride (each tile runs once)."""
    if axis.count == 1:
        return min(-(-axis.size // 16) * 16, -(-cap // 16) * 16)
    return math.lcm(axis.stride, 16)


def output_windows(shape: tuple[int, int], tile: tuple[int, int]) -> list[tiling.Region]:
    """The output windows as image rectangles, row by row (the last ones cut short)."""
    (h, w), (ty, tx) = shape, tile
    return [
        (r0, c0, min(ty, h - r0), min(tx, w - c0))
        for r0 in range(0, h, ty)
        for c0 in range(0, w, tx)
    ]


def mask_bands(
    seg: Segmenter,
    plan: tiling.TilePlan,
    read: tiling.WindowReader,
    scaling: processing.Scaling,
    windows: list[tiling.Region],
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[np.ndarray]:
    """The saved mask (uint8, as ``unet-edge run`` writes it) one band of rows at a time.

    ``windows`` are :func:`output_windows`, row by row; a band is yielded when
    its last window is done, so memory holds one band (its height times the
    image width).
    """
    width = plan.width
    band = np.empty((0, width), np.uint8)
    for done, region in enumerate(windows, 1):
        _, c0, rh, rw = region
        if c0 == 0:
            band = np.empty((rh, width), np.uint8)
        mask = processing.to_mask(run_region(seg, plan, read, region, scaling))
        band[:, c0 : c0 + rw] = processing.mask_to_image(mask, seg.info.classes)
        if progress is not None:
            progress(done, len(windows))
        if c0 + rw == width:
            yield band


def segment_large(
    seg: Segmenter,
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    compression: str | None = "zlib",
    progress: Callable[[int, int], None] | None = None,
    memory_budget: int | None = LARGE_MEMORY_BUDGET,
    ome: bool = False,
    max_pixels: int | None = None,
) -> Path:
    """Segment a TIFF of any size into a striped mask TIFF with memory independent of its height.

    Args:
        seg: an open Segmenter; its tile plan for the whole image is used.
        source: a single-image TIFF, (H, W) or (H, W, C), opened once
            (:class:`unet_edge.io.TiffWindows`). Uncompressed files are
            memory-mapped window by window; compressed or tiled ones are read
            through tifffile's zarr store.
        output: the mask TIFF to write (0/255 for two classes, class indices
            otherwise, as ``unet-edge run`` saves masks), uint8, an ImageJ
            hyperstack (OME-TIFF if ``ome``) in strips of whole rows, written
            band by band from the top, with the source's pixel size and the
            Segmenter's provenance (:func:`unet_edge.io.write_tiff_strips`).
            Written to a temporary file and renamed: no partial file on failure.
        compression: "zlib" or None (uncompressed).
        progress: called as ``progress(done, total)`` after each output window.
        memory_budget: activation memory (bytes) for the tile choice, if below
            the Segmenter's own budget (None: the Segmenter's).
        ome: write OME-TIFF instead of an ImageJ hyperstack.
        max_pixels: most pixels the image may have (None: :data:`unet_edge.io.MAX_PIXELS`,
            0: no limit), checked from the header.

    Returns the output path. The result equals ``seg.segment(whole image)``.
    Memory holds one band of the mask (a window's height times the width, uint8)
    and one batch of network tiles.
    """
    source = io.as_path(source, "source")
    with io.TiffWindows(source, max_pixels=max_pixels) as src:
        output = io.as_path(output, "output")
        segment_windows(
            seg,
            src,
            output,
            compression=compression,
            progress=progress,
            memory_budget=memory_budget,
            ome=ome,
        )
    return output


def segment_windows(
    seg: Segmenter,
    src: io.TiffWindows,
    output: Path,
    *,
    compression: str | None = "zlib",
    progress: Callable[[int, int], None] | None = None,
    memory_budget: int | None = LARGE_MEMORY_BUDGET,
    ome: bool = False,
) -> dict[str, Any]:
    """:func:`segment_large` on a TIFF already open as ``src``; returns the provenance
    written into ``output`` (the arguments are :func:`segment_large`'s)."""
    h, w = src.shape[0], src.shape[1]
    scaling = seg.scaling_for(src)  # one strided pass: the whole image's statistics
    plan = seg.plan_for((h, w), memory_budget)
    ty, tx = output_tile(plan.y), output_tile(plan.x)
    windows = output_windows((h, w), (ty, tx))
    bands = mask_bands(seg, plan, src.read_window, scaling, windows, progress)
    prov = seg.result_provenance(plan, [scaling.to_dict()], source=src.path.name)
    io.write_tiff_strips(
        output,
        bands,
        (h, w),
        ty,
        prov,
        calibration=src.calibration,
        ome=ome,
        compression=compression,
    )
    return prov
