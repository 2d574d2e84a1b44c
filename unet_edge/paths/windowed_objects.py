"""Instance labels and measurements of a mask that arrives window by window.

:class:`ObjectFiles` names the object outputs of a windowed run (the labels TIFF, the object
table) and :class:`WindowObjects` makes them: each window's objects are labelled and measured
as it is computed, merged across window borders and numbered as labelling the whole mask
would (:mod:`unet_edge.objects.merge`), then the labels are written strip by strip
(:func:`strips`) from the object mask kept as bits on disk. Memory stays one band, plus a few
numbers per object. The windowed (:mod:`unet_edge.paths.windowed`) and cluster
(:mod:`unet_edge.paths.cluster`) paths use them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import io, tiling

if TYPE_CHECKING:
    from ..imagemeta import Calibration
    from ..runtime import Segmenter
    from .files import FilePlan


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


def strips(bands: Iterable[np.ndarray], rows: int) -> Iterator[np.ndarray]:
    """``bands`` cut into pieces of ``rows`` rows (the last may be shorter): a striped TIFF's
    strips all have one height, but bands may be taller (Dask's last chunk)."""
    for band in bands:
        for r in range(0, band.shape[0], rows):
            yield band[r : r + rows]
