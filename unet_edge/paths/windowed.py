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

Instance labels and the object table (:class:`ObjectFiles`) come with the
same guarantee: :class:`WindowObjects` (:mod:`unet_edge.paths.windowed_objects`)
labels and measures each window as it is computed, merges the objects that meet
across window borders and numbers them as labelling the whole mask would
(:mod:`unet_edge.objects.merge`), then writes the labels strip by strip from the
object mask it kept as bits on disk. Memory stays one band, plus a few numbers per object.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import io, processing, scale, tiling
from ..io import axes as io_axes
from .quality import RegionQuality, WindowParts
from .windowed_objects import ObjectFiles, WindowObjects, strips

if TYPE_CHECKING:
    from ..imagemeta import Calibration
    from ..runtime import Segmenter
    from ..scale import Grid, Rescale

#: Activation-memory estimate for the tile choice of large images (real use is ~1.6x).
LARGE_MEMORY_BUDGET = 256 << 20


def run_region(
    seg: Segmenter,
    plan: tiling.TilePlan,
    read: tiling.WindowReader,
    region: tiling.Region,
    scaling: processing.Scaling,
    grid: Grid | None = None,
    quality: WindowParts | None = None,
) -> np.ndarray:
    """Probabilities (K, h, w) float32 of ``region`` (top, left, h, w) of the whole-image result.

    ``plan`` must be the whole image's plan, ``read`` reads raw image pixels
    and ``scaling`` is the whole image's (:meth:`Segmenter.scaling_for` on the
    image), so the values equal whole-image (and in-memory) inference. With a
    ``grid`` (:class:`unet_edge.scale.Grid`), ``plan`` is the plan of its model-grid
    image and ``region`` is on the input's grid: the image is resampled to the model's
    pixel size window by window and the probabilities back, as in memory. ``quality`` keeps
    its feature windows of the probabilities, on the grid the kernel runs on.
    """

    def run(reader: tiling.WindowReader, where: tiling.Region) -> np.ndarray:
        probs = seg.tile_run(plan, reader, scaling, where).run(seg.predict_batch)
        if quality is not None:  # the domain guard's windows (model's grid, as in memory)
            quality.add(where, probs)
        return probs

    return run(read, region) if grid is None else grid.run_region(run, read, region)


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
    objects: WindowObjects | None = None,
    grid: Grid | None = None,
    quality: RegionQuality | None = None,
) -> Iterator[np.ndarray]:
    """The saved mask (uint8, as ``unet-edge run`` writes it) one band of rows at a time.

    ``windows`` are :func:`output_windows`, row by row; a band is yielded when
    its last window is done, so memory holds one band (its height times the
    image width). ``objects`` is given every window's mask and probabilities;
    ``grid``, ``quality``: :func:`run_region`'s (windows on the input's grid).
    """
    width = plan.width if grid is None else grid.shape[1]
    band = np.empty((0, width), np.uint8)
    for done, region in enumerate(windows, 1):
        _, c0, rh, rw = region
        if c0 == 0:
            band = np.empty((rh, width), np.uint8)
        probs = run_region(seg, plan, read, region, scaling, grid, quality)
        mask = processing.to_mask(probs)
        if objects is not None:
            objects.add(region, mask, objects.probability(probs))
        band[:, c0 : c0 + rw] = processing.mask_to_image(mask, seg.info.classes)
        if progress is not None:
            progress(done, len(windows))
        if c0 + rw == width:
            yield band


def write_outputs(
    output: Path,
    bands: Iterable[np.ndarray],
    src: io.TiffWindows,
    rows: int,
    provenance: Mapping[str, Any],
    objects: WindowObjects | None,
    *,
    ome: bool = False,
    compression: str | None = "zlib",
    calibration: Calibration | None = None,
    late: Callable[[], Mapping[str, Any]] | None = None,
) -> None:
    """Write the mask TIFF of ``src`` from ``bands`` (uint8, ``rows`` rows each, the last
    may be taller or shorter), then the ``objects`` outputs; a failure leaves none of them.
    They carry ``calibration`` (None: ``src``'s); ``late``: provenance known after the last
    band (:func:`unet_edge.io.write_tiff_strips`)."""
    calibration = src.calibration if calibration is None else calibration
    try:
        io.write_tiff_strips(
            output,
            strips(bands, rows),
            (src.shape[0], src.shape[1]),
            rows,
            provenance,
            calibration=calibration,
            ome=ome,
            compression=compression,
            late=late,
        )
        if objects is not None:
            objects.write(provenance, calibration, compression, rows_per_strip=rows)
    except BaseException:
        if objects is not None:
            objects.close()
            output.unlink(missing_ok=True)  # no mask without the objects asked for
        raise


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
    objects: ObjectFiles | None = None,
    pixel_size: Any = None,
    channel: int | None = None,
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
        objects: also write the instance labels and/or the measurements of the
            model's object classes (:class:`ObjectFiles`), equal to labelling and
            measuring the whole mask at once (:class:`WindowObjects`).
        pixel_size: the image's, as for :func:`unet_edge.paths.files.segment_file`.
        channel: the channel a 1-channel model segments of a multi-channel image (a colour
            of RGB, a plane of a ``CYX`` composite), read alone window by window (None: the
            Segmenter's ``channel``). RGB stored grey with none picked is read as grey.

    Returns the output path. The result equals ``seg.segment(whole image)``, and its
    provenance records the axes (and a note for grey stored as RGB) as in memory.
    Memory holds one band of the mask (a window's height times the width, uint8)
    and one batch of network tiles.
    """
    source = io.as_path(source, "source")
    channel = seg.channel if channel is None else channel  # the Segmenter's default
    grey = seg.info.channels == 1  # RGB stored grey is checked window by window
    with io.TiffWindows(source, max_pixels=max_pixels, channel=channel, grey=grey) as src:
        output = io.as_path(output, "output")
        kw: dict[str, Any] = {"ome": ome, "objects": objects, "memory_budget": memory_budget}
        kw["channel"] = channel
        kw["rescale"] = scale.resolve(seg.info.pixel_size, pixel_size, src.calibration)
        kw["calibration"] = scale.output_calibration(pixel_size, src.calibration)
        segment_windows(seg, src, output, compression=compression, progress=progress, **kw)
    return output


def model_read(
    seg: Segmenter, header: io.ImageHeader, channel: int | None
) -> tuple[int | None, bool, dict[str, Any]]:
    """How a file with ``header`` is read window by window for ``seg``'s model with
    ``channel`` picked (None: none): the channel :class:`unet_edge.io.TiffWindows` reads
    alone (None: every sample, or grey), whether RGB is read as grey, and the provenance
    entries the in-memory path records (``axes``, ``axes_note``). Refused as in memory
    (:func:`unet_edge.io.axes.layout`)."""
    found = io_axes.layout(header, seg.info.channels, channel)
    picked = found.channel if found.colour else None  # TiffWindows reads grey whole
    grey = found.grey_check and header.axes == "YXS"
    noted: dict[str, Any] = {"axes": found.to_dict()}
    if grey:  # a window that is not grey raises: the note holds for every output kept
        noted["axes_note"] = io_axes.grey_note(header.path, header.shape[-1])
    return picked, grey, noted


@contextlib.contextmanager
def read_for_model(
    seg: Segmenter, src: io.TiffWindows, channel: int | None = None
) -> Iterator[tuple[io.TiffWindows, dict[str, Any]]]:
    """``src`` read as the in-memory path reads its file for ``seg``'s model, with the
    provenance entries that path records: ``axes`` and, for grey stored as RGB,
    ``axes_note`` (:meth:`unet_edge.io.axes.Arranged.provenance`).

    The channel is ``channel``, else ``src``'s, else the Segmenter's (``seg.channel``);
    RGB for a 1-channel model with none picked is read as grey, checked window by window
    (a window that is not grey stops the run before any output is kept). ``src`` is opened
    again (checked unchanged) when it was opened otherwise. The layout is refused as in
    memory (:func:`unet_edge.io.axes.layout`: a channel that is not there, say).
    """
    if channel is None:
        channel = seg.channel if src.channel is None else src.channel
    picked, grey, noted = model_read(seg, src.header, channel)
    if picked == src.channel and grey == src.grey:
        yield src, noted
        return
    # its header was checked against max_pixels when src was opened
    again = io.TiffWindows(src.path, max_pixels=0, expect=src.header, channel=picked, grey=grey)
    with again:
        yield again, noted


def segment_windows(
    seg: Segmenter,
    src: io.TiffWindows,
    output: Path,
    *,
    compression: str | None = "zlib",
    progress: Callable[[int, int], None] | None = None,
    memory_budget: int | None = LARGE_MEMORY_BUDGET,
    ome: bool = False,
    objects: ObjectFiles | None = None,
    rescale: Rescale | None = None,
    calibration: Calibration | None = None,
    channel: int | None = None,
) -> dict[str, Any]:
    """:func:`segment_large` on a TIFF already open as ``src``; returns the provenance
    written into ``output`` (the arguments are :func:`segment_large`'s; ``rescale``: the
    image's resampling to the model's pixel size, :func:`unet_edge.scale.resolve`;
    ``calibration``: the outputs', None: ``src``'s; ``channel``: None: ``src``'s, else the
    Segmenter's, :func:`read_for_model`)."""
    with read_for_model(seg, src, channel) as (src, noted):
        kw: dict[str, Any] = {"compression": compression, "progress": progress, "ome": ome}
        kw.update(memory_budget=memory_budget, objects=objects, calibration=calibration)
        return _segment_windows(seg, src, output, rescale, noted, **kw)


def _segment_windows(
    seg: Segmenter,
    src: io.TiffWindows,
    output: Path,
    rescale: Rescale | None,
    axes: dict[str, Any],
    *,
    compression: str | None,
    progress: Callable[[int, int], None] | None,
    memory_budget: int | None,
    ome: bool,
    objects: ObjectFiles | None,
    calibration: Calibration | None,
) -> dict[str, Any]:
    """:func:`segment_windows` of ``src`` read as the model takes it; ``axes``: its
    provenance entries (:func:`read_for_model`)."""
    h, w = src.shape[0], src.shape[1]
    scaling = seg.scaling_for(src)  # one strided pass: the whole image's statistics
    grid = None if rescale is None else rescale.grid((h, w))
    plan = seg.plan_for(grid.model_shape if grid else (h, w), memory_budget)
    ty, tx = output_tile(plan.y), output_tile(plan.x)
    if rescale is not None:  # the same windows' area on the input's grid
        ty, tx = rescale.window((ty, tx))
    windows = output_windows((h, w), (ty, tx))
    found = WindowObjects.for_source(seg, src, objects)
    quality = RegionQuality.of(seg, (plan.height, plan.width))  # plan: on the kernel's grid
    kw: dict[str, Any] = {"objects": found, "grid": grid, "quality": quality}
    bands = mask_bands(seg, plan, src.read_window, scaling, windows, progress, **kw)
    noted: dict[str, Any] = {"rescale": rescale.to_dict()} if rescale else {}
    noted |= {"calibration_note": src.calibration_note} if src.calibration_note else {}
    noted |= axes  # as in memory: the file's axes, the channel picked, grey stored as RGB
    noted["quality"] = None  # filled in once every window is done (the domain guard's score)
    prov = seg.result_provenance(plan, [scaling.to_dict()], source=src.path.name, **noted)
    kw = {"ome": ome, "compression": compression, "calibration": calibration}
    if quality is not None:
        read = grid.reader(src.read_window) if grid else src.read_window

        def late() -> dict[str, Any]:  # prov too: the objects outputs and the caller see it
            prov["quality"] = quality.record(read, scaling)
            return {"quality": prov["quality"]}

        kw["late"] = late
    write_outputs(output, bands, src, ty, prov, found, **kw)
    return prov
