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
same guarantee: :class:`WindowObjects` labels and measures each window as it
is computed, merges the objects that meet across window borders and numbers
them as labelling the whole mask would (:mod:`unet_edge.objects.merge`), then
writes the labels strip by strip from the object mask it kept as bits on disk.
Memory stays one band, plus a few numbers per object.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import io, processing, scale, tiling
from .quality import RegionQuality, WindowParts

if TYPE_CHECKING:
    from ..imagemeta import Calibration
    from ..runtime import Segmenter
    from ..scale import Grid, Rescale
    from .files import FilePlan

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


@dataclass(frozen=True)
class ObjectFiles:
    """The object outputs of a window-by-window run: ``labels`` (the instance labels TIFF)
    and ``table`` (the measurements CSV), each None when not asked for; objects of fewer
    than ``min_size`` pixels (in the whole image) are removed."""

    labels: Path | None = None
    table: Path | None = None
    min_size: int = 0
    split: str | None = None  # "watershed": touching objects split (objects.split_blocks)
    about: Mapping[str, Any] = field(default_factory=dict)  # added to the outputs' provenance
    border: tuple[int, ...] = ()  # classes given back to the objects (objects.border_blocks)

    @classmethod
    def for_plan(
        cls, seg: Segmenter, plan: FilePlan, calibration: Calibration | None
    ) -> ObjectFiles | None:
        """The object outputs of a file plan (None: none asked for); ``min_size`` in pixels
        of the image's ``calibration``."""
        if plan.labelling is None or not {"labels", "objects"} & set(plan.outputs):
            return None
        labelling = plan.labelling.for_model(seg.info.labelling)  # the model's rule, whole
        names = [seg.info.class_names[c] for c in seg.info.object_classes]
        return cls(
            plan.outputs.get("labels"),
            plan.outputs.get("objects"),
            labelling.min_size.pixels(calibration) if labelling.min_size else 0,
            labelling.to_dict()["split"],
            {"objects": {"classes": names, **labelling.to_dict(), **_given(seg)}},
            seg.info.border_classes,  # a three-class model's bands go back, as in memory
        )


def _given(seg: Segmenter) -> dict[str, Any]:
    """Provenance of a model with a border class: the classes given back to the objects."""
    given = [seg.info.class_names[c] for c in seg.info.border_classes]
    return {"border": given} if given else {}


class WindowObjects:
    """Instance labels and measurements of a mask that arrives window by window.

    Pass 1, :meth:`add` (windows row by row, as :func:`mask_bands` computes
    them): each window's objects are labelled and measured
    (:class:`unet_edge.objects.merge.BlockMerge`) and its object mask kept as
    bits in a temporary file (:class:`unet_edge.io.spill.BitSpill`). Pass 2,
    :meth:`write`: the objects are merged across the window borders and
    numbered, and the labels written band by band from the kept bits. The labels
    equal :func:`unet_edge.objects.labels.label` on the whole mask, id for id,
    and the measurements its :class:`~unet_edge.objects.measure.ObjectSums`. A split and
    a border class are applied in a second pass over bands of the final labels, and the
    objects then measured whole (:class:`unet_edge.objects.second_pass.SecondPass`).
    Memory: one band of labels and a few numbers per object (more with a split or border).

    ``read`` reads raw pixels for the mean intensity; ``channels`` is theirs.
    """

    def __init__(
        self,
        shape: tuple[int, int],
        object_classes: Sequence[int],
        files: ObjectFiles,
        read: tiling.WindowReader | None = None,
        channels: int = 1,
    ) -> None:
        from ..config import look_up
        from ..io.spill import BitSpill
        from ..objects.labels import Split
        from ..objects.merge import BlockMerge
        from ..objects.second_pass import SecondPass

        split = files.split is not None and look_up(Split, files.split, "split") is Split.WATERSHED
        self.shape, self.files, self.read = shape, files, read
        self.classes = sorted(set(object_classes))
        table, whole = files.table is not None, bool(files.border) or split
        # split or border: the rule needs the final labels, so pass 2 measures (SecondPass)
        measure = table and not whole
        self.merge = BlockMerge(shape, files.min_size, measure, channels, boxes=split)
        keep = files.labels is not None or (table and whole)
        self.spill = BitSpill(shape[1]) if keep else None
        after = SecondPass(shape[1], files.border, table, channels, split) if whole else None
        self.after = after
        self._band = np.empty((0, shape[1]), bool)

    @classmethod
    def for_source(
        cls, seg: Segmenter, src: io.TiffWindows, files: ObjectFiles | None
    ) -> WindowObjects | None:
        """The objects of ``seg``'s model in the image ``src`` (None without ``files``)."""
        if files is None:
            return None
        channels = src.shape[2] if len(src.shape) == 3 else 1
        shape = (src.shape[0], src.shape[1])
        return cls(shape, seg.info.object_classes, files, src.read_window, channels)

    def probability(self, probs: np.ndarray) -> np.ndarray | None:
        """Each pixel's probability of being an object (h, w) float32, from the class
        probabilities (K, h, w): the object classes' summed (None if not measuring)."""
        return probs[self.classes].sum(0) if self.files.table is not None else None

    def add(self, region: tiling.Region, mask: np.ndarray, prob: np.ndarray | None) -> None:
        """One window: ``mask`` (h, w) class indices, ``prob`` (h, w) (:meth:`probability`)."""
        from ..objects.labels import object_mask

        _, left, h, w = region
        objects = object_mask(mask, self.classes)
        measuring = self.merge.measure
        raw = self.read(*region) if measuring and self.read is not None else None
        self.merge.add(region, objects, prob=prob if measuring else None, raw=raw)
        if self.after is not None:
            self.after.add(region, mask, prob)
        if self.spill is None:
            return
        if left == 0:
            self._band = np.empty((h, self.shape[1]), bool)
        self._band[:, left : left + w] = objects
        if left + w == self.shape[1]:
            self.spill.append(self._band)

    def label_bands(self) -> Iterator[np.ndarray]:
        """The final labels, one band (a row of windows) at a time, top to bottom, by the
        model's whole rule: split and border given back in a second pass, exactly as on the
        whole image (:class:`unet_edge.objects.second_pass.SecondPass`)."""
        if self.after is None:
            yield from (band for _, band in self._object_bands())
            return
        read, width = self.read, self.shape[1]
        raw = (lambda t, h: read(t, 0, h, width)) if read is not None else (lambda t, h: None)
        self.after.prepare(self.merge.finish(), self.shape, self._object_bands)
        yield from self.after.bands(self._object_bands, raw)

    def _object_bands(self) -> Iterator[tuple[int, np.ndarray]]:
        """(top row, final labels of the object classes alone) of each band, top to bottom."""
        assert self.spill is not None
        rows: dict[int, list[tiling.Region]] = {}
        for region in self.merge.blocks:
            rows.setdefault(region[0], []).append(region)
        dtype = self.merge.finish().dtype
        for top, regions in rows.items():
            objects = self.spill.read(top, top + regions[0][2])
            band = np.empty(objects.shape, dtype)
            for region in regions:
                c0, w = region[1], region[3]
                band[:, c0 : c0 + w] = self.merge.relabel(region, objects[:, c0 : c0 + w])
            yield top, band

    def write(
        self,
        provenance: Mapping[str, Any],
        calibration: Calibration | None,
        compression: str | None = "zlib",
        rows_per_strip: int | None = None,
    ) -> list[Path]:
        """Merge, number, and write the files asked for (after the last window); returns them.

        The labels TIFF is uint16, or uint32 above 65,535 objects (as
        :func:`unet_edge.io.write_labels`), in strips of ``rows_per_strip`` rows
        (None: the first window's height) like the mask.
        """
        from ..objects.table import write_csv

        numbering = self.merge.finish()
        written = []
        try:
            dtype = numbering.dtype
            if self.after is not None:  # a split's first sweep: how many objects there are
                dtype = self.after.prepare(numbering, self.shape, self._object_bands)
            if self.files.labels is not None:
                first = next(iter(self.merge.blocks), (0, 0, 1, 1))
                rows = rows_per_strip or first[2]
                prov = {**provenance, **self.files.about}
                io.write_tiff_strips(
                    self.files.labels,
                    strips(self.label_bands(), rows),
                    self.shape,
                    rows,
                    prov,
                    calibration=calibration,
                    compression=compression,
                    dtype=dtype,
                )
                written.append(self.files.labels)
            if self.files.table is not None:
                whole = self.after.sums if self.after is not None else None
                if whole is not None and self.files.labels is None:
                    for _ in self.label_bands():  # pass 2 measures the objects whole
                        pass
                sums = self.merge.sums() if whole is None else whole
                write_csv(self.files.table, sums.table(calibration))
                written.append(self.files.table)
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
        finally:
            self.close()
        return written

    def close(self) -> None:
        """Delete the temporary files (idempotent)."""
        for spill in (self.spill, self.after):
            if spill is not None:
                spill.close()


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


def strips(bands: Iterable[np.ndarray], rows: int) -> Iterator[np.ndarray]:
    """``bands`` cut into pieces of ``rows`` rows (the last may be shorter): a striped TIFF's
    strips all have one height, but bands may be taller (Dask's last chunk)."""
    for band in bands:
        for r in range(0, band.shape[0], rows):
            yield band[r : r + rows]


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
            of RGB, a plane of a ``CYX`` composite), read alone window by window.

    Returns the output path. The result equals ``seg.segment(whole image)``.
    Memory holds one band of the mask (a window's height times the width, uint8)
    and one batch of network tiles.
    """
    source = io.as_path(source, "source")
    grey = seg.info.channels == 1  # RGB stored grey is checked window by window
    with io.TiffWindows(source, max_pixels=max_pixels, channel=channel, grey=grey) as src:
        output = io.as_path(output, "output")
        kw: dict[str, Any] = {"ome": ome, "objects": objects, "memory_budget": memory_budget}
        kw["rescale"] = scale.resolve(seg.info.pixel_size, pixel_size, src.calibration)
        kw["calibration"] = scale.output_calibration(pixel_size, src.calibration)
        segment_windows(seg, src, output, compression=compression, progress=progress, **kw)
    return output


def picked_axes(src: io.TiffWindows) -> dict[str, Any]:
    """The provenance entry ``axes`` of a file read one channel alone (as the in-memory path
    records it: :meth:`unet_edge.io.axes.Layout.to_dict`); {} when every sample is read."""
    if src.channel is None:
        return {}
    return {"axes": {"input": src.header.axes, "mask": "YX", "channel": src.channel}}


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
) -> dict[str, Any]:
    """:func:`segment_large` on a TIFF already open as ``src``; returns the provenance
    written into ``output`` (the arguments are :func:`segment_large`'s; ``rescale``: the
    image's resampling to the model's pixel size, :func:`unet_edge.scale.resolve`;
    ``calibration``: the outputs', None: ``src``'s)."""
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
    noted |= picked_axes(src)
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
