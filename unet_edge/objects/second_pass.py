"""The second pass of a window-by-window labelling that follows the model's whole rule.

Pass 1 (the windows, row by row) labels each window's objects and merges them
across the window borders (:class:`unet_edge.objects.merge.BlockMerge`). What
the model's labelling rule does after that needs the FINAL labels, so it is a
second pass over full-width bands of them, top to bottom, in the order
:func:`unet_edge.objects.labels.label_classes` applies it in memory:

1. the watershed split (``split="watershed"``), each object from its own crop
   (:class:`unet_edge.objects.split_blocks.BandSplit`: two sweeps, ids in raster
   order of first pixels);
2. the border class given back to the nearest object
   (:func:`unet_edge.objects.border_blocks.give_border_bands`);
3. the objects measured whole (:func:`unet_edge.objects.border_blocks.measure_bands`),
   since pass 1's sums see neither the parts nor the border pixels.

:class:`SecondPass` keeps what pass 1 must leave for it (the border class as bits,
the object probability as float32, both in anonymous temporary files) and runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from .border_blocks import give_border_bands, measure_bands
from .measure import ObjectSums
from .merge import Numbering
from .split_blocks import BandSplit

__all__ = ["SecondPass"]

#: A fresh iterator over (top row, final labels) of every band, top to bottom.
Bands = Callable[[], Iterable[tuple[int, np.ndarray]]]


class SecondPass:
    """Split, border and measurements of a labelling that arrives window by window.

    ``width``: the image's; ``border``: the border classes (none: nothing given back);
    ``measure``: measure the objects whole into :attr:`sums`; ``channels``: of the raw
    intensities; ``split``: split touching objects by the watershed.
    """

    def __init__(
        self,
        width: int,
        border: Sequence[int] = (),
        measure: bool = False,
        channels: int = 1,
        split: bool = False,
    ) -> None:
        from ..io.row_spill import RowSpill
        from ..io.spill import BitSpill

        self.width, self.classes, self.split = width, tuple(border), split
        self.border = BitSpill(width) if self.classes else None
        self.prob = RowSpill(width) if measure else None
        self.sums = ObjectSums(channels) if measure else None
        self.splitter: BandSplit | None = None
        self._band = np.empty((0, width), bool)
        self._prob = np.empty((0, width), np.float32)

    def add(self, region: tuple[int, int, int, int], mask: np.ndarray, prob: Any) -> None:
        """Pass 1, one window ``region`` (top, left, h, w): ``mask`` (h, w) class indices
        and, when measuring, ``prob`` (h, w) its object probability."""
        from .labels import object_mask

        _, left, h, w = region
        if left == 0:
            self._band = np.empty((h, self.width), bool)
            self._prob = np.empty((h, self.width), np.float32)
        if self.border is not None:
            self._band[:, left : left + w] = object_mask(mask, self.classes)
        if self.prob is not None:
            self._prob[:, left : left + w] = prob
        if left + w == self.width:
            if self.border is not None:
                self.border.append(self._band)
            if self.prob is not None:
                self.prob.append(self._prob)

    def prepare(self, numbering: Numbering, shape: tuple[int, int], bands: Bands) -> np.dtype:
        """After pass 1: split's first sweep (when splitting); the labels' dtype."""
        if not self.split:
            return numbering.dtype
        if self.splitter is None:
            assert numbering.boxes is not None and numbering.first is not None
            self.splitter = BandSplit(shape, numbering.boxes, numbering.first)
            self.splitter.count(bands())
        return self.splitter.dtype

    def bands(
        self,
        bands: Bands,
        raw: Callable[[int, int], np.ndarray | None] = lambda top, h: None,
    ) -> Iterator[np.ndarray]:
        """The final labels of the whole rule, band by band (after :meth:`prepare`);
        ``raw(top, h)``: the raw intensities of those rows (h, W[, C]) for :attr:`sums`."""
        labels: Iterable[tuple[int, np.ndarray]] = bands()
        if self.split:
            assert self.splitter is not None, "prepare() first"
            labels = self.splitter.bands(labels)
        if self.border is not None:
            border = self.border
            given = give_border_bands((b, border.read(t, t + b.shape[0])) for t, b in labels)
        else:
            given = (b for _, b in labels)
        if self.sums is None or self.prob is None:
            return iter(given)
        spill = self.prob
        return measure_bands(given, self.sums, lambda t, h: spill.read(t, t + h), raw)

    def close(self) -> None:
        """Delete the temporary files (idempotent)."""
        for spill in (self.border, self.prob):
            if spill is not None:
                spill.close()
