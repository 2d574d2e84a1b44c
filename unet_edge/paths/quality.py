"""The domain guard's score of an image processed region by region (windowed and Dask paths).

The in-memory path scores a frame (:meth:`unet_edge.domain.Guard.assess`) from
its raw pixels and probabilities in the guard's feature windows
(:func:`unet_edge.domain.windows`: at most 36 windows of 64 px spread over
the whole frame). A large image is never whole in memory, so
:class:`RegionQuality` keeps just those windows' probabilities, copied out of
each region of the result as it is computed, and reads the windows' raw
pixels at the end: a few hundred kB whatever the image size, and no
inference of its own. The windows, pixels, scaling and probabilities are the
in-memory path's (the windowed and Dask results equal the in-memory one bit
for bit), so the score is the in-memory score exactly.

With a resampling to the model's pixel size (:mod:`unet_edge.scale`) the
in-memory path scores the frame on the model's grid; the windowed path does
too (its kernel runs there, :func:`unet_edge.paths.windowed.run_region`);
the Dask paths see probabilities on the input's grid only and do not score
(quality None).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import domain, processing, tiling
from ..errors import UnetEdgeError

if TYPE_CHECKING:
    from ..runtime import Segmenter


class RegionQuality:
    """The feature windows of one (H, W) frame whose probabilities arrive region by region.

    ``shape``: (H, W) of the grid the probabilities are on; ``classes``: K. Call
    :meth:`add` with every computed region (regions may overlap: equal values),
    then :meth:`assess` once.
    """

    def __init__(self, guard: domain.Guard, shape: tuple[int, int], classes: int) -> None:
        self.guard = guard
        self.windows = domain.windows(*shape)
        self.probabilities = [np.zeros((classes, h, w), np.float32) for *_, h, w in self.windows]
        self._seen = [np.zeros((h, w), bool) for *_, h, w in self.windows]

    @classmethod
    def of(cls, seg: Segmenter, shape: tuple[int, int]) -> RegionQuality | None:
        """The collector for ``seg``'s model and a frame of ``shape`` (None: no statistics)."""
        guard = seg.guard
        return None if guard is None else cls(guard, shape, seg.info.classes)

    def add(self, region: tiling.Region, probabilities: np.ndarray) -> None:
        """Keep the parts of the feature windows inside ``region`` (top, left, h, w) of the
        frame, whose probabilities (K, h, w) float32 are given."""
        top, left, rh, rw = region
        for (t, s, h, w), kept, seen in zip(
            self.windows, self.probabilities, self._seen, strict=True
        ):
            a, b = max(t, top), min(t + h, top + rh)
            c, d = max(s, left), min(s + w, left + rw)
            if a < b and c < d:
                kept[:, a - t : b - t, c - s : d - s] = probabilities[
                    :, a - top : b - top, c - left : d - left
                ]
                seen[a - t : b - t, c - s : d - s] = True

    def crops(self, region: tiling.Region) -> list[tuple[tiling.Region, tiling.Region]]:
        """The parts of the feature windows inside ``region``: (the part in the frame's
        coordinates, the same part in ``region``'s), for a caller that fetches only them."""
        top, left, rh, rw = region
        out = []
        for t, s, h, w in self.windows:
            a, b = max(t, top), min(t + h, top + rh)
            c, d = max(s, left), min(s + w, left + rw)
            if a < b and c < d:
                out.append(((a, c, b - a, d - c), (a - top, c - left, b - a, d - c)))
        return out

    @property
    def complete(self) -> bool:
        """Whether every pixel of every feature window has been given."""
        return all(bool(s.all()) for s in self._seen)

    def assess(self, read: tiling.WindowReader, scaling: processing.Scaling) -> domain.Quality:
        """The frame's :class:`~unet_edge.domain.Quality`: ``read`` reads its raw pixels on
        the same grid, ``scaling`` is the whole frame's (as the kernel used)."""
        if not self.complete:
            raise UnetEdgeError(
                "the quality of an image was asked before all of its feature windows were "
                "computed; segment the whole image first"
            )
        raw = [np.asarray(read(*win)) for win in self.windows]
        return self.guard.assess_windows(raw, self.probabilities, scaling)

    def record(self, read: tiling.WindowReader, scaling: processing.Scaling) -> list[Any]:
        """:meth:`assess` as provenance holds it: one frame's record in a list, like the
        in-memory path's (:meth:`unet_edge.prediction.Prediction.quality_record`)."""
        return [self.assess(read, scaling).to_dict()]


def dask_quality(
    probabilities: Any,
    image: Any,
    segmenter: Segmenter,
    scaling: processing.Scaling | None = None,
    pixel_size: Any = None,
) -> Any:
    """The image's :class:`~unet_edge.domain.Quality` as a ``dask.delayed`` (computing it gives
    None for a model without statistics, or for an image resampled to the model's pixel size).

    ``probabilities``: the lazy (K, H, W) result of
    :func:`unet_edge.paths.dask.segment_dask` (``probabilities=True``) for ``image`` (the
    same (H, W[, C]) array), ``scaling`` the whole image's (None: measured here),
    ``pixel_size`` as given to ``segment_dask``. Only the feature windows are
    taken from either: compute it together with the result (``dask.compute(mask,
    quality)``) and each chunk is computed once. Equals the in-memory score.
    """
    import dask

    from .. import scale

    guard = segmenter.guard
    shape = (int(probabilities.shape[1]), int(probabilities.shape[2]))
    if guard is None or scale.frame_grid(segmenter.info.pixel_size, pixel_size, shape):
        return dask.delayed(None)
    if scaling is None:
        scaling = segmenter.scaling_for(image)
    wins = domain.windows(*shape)
    raw = [image[t : t + h, s : s + w] for t, s, h, w in wins]
    probs = [probabilities[:, t : t + h, s : s + w] for t, s, h, w in wins]
    return dask.delayed(_assess)(guard, raw, probs, scaling)


def _assess(
    guard: domain.Guard,
    raw: Sequence[Any],
    probabilities: Sequence[Any],
    scaling: processing.Scaling,
) -> domain.Quality:
    raws = [np.asarray(r) for r in raw]
    return guard.assess_windows(raws, [np.asarray(p) for p in probabilities], scaling)
