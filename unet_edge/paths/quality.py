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
in-memory path scores the frame on the model's grid: the resampled image and
the probabilities before they are resampled back. The windowed path does too
(its kernel runs there, :func:`unet_edge.paths.windowed.run_region`), and so do
the Dask paths: each chunk runs the kernel on the model's grid, and
:func:`unet_edge.paths.dask.segment_dask` returns with each chunk's result the
parts of the feature windows it computed there (:class:`WindowParts`: the
resampled raw pixels and the probabilities), which :func:`dask_quality` and
the cluster path (:func:`band_pieces`) collect. Same pixels, so again exactly
the in-memory score.

The lazy scores are 0-d Dask arrays rather than ``dask.delayed``: computed
together with the result (``dask.compute(mask, quality)``), arrays are optimised
as one graph and each chunk is computed once, while a delayed is optimised
apart and would make the chunks it reads be computed a second time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import domain, processing, tiling
from ..errors import InputError, UnetEdgeError

if TYPE_CHECKING:
    from ..runtime import Segmenter

#: The name prefix of :func:`unet_edge.paths.dask.segment_dask`'s chunks that carry the
#: feature windows' parts of a resampled image (its result's only dependency).
PAIR_PREFIX = "unet-edge-windows-"

Part = tuple[tiling.Region, np.ndarray, np.ndarray]
"""One feature window's part computed in a region: (top, left, h, w) in the frame, its raw
pixels (h, w[, C]) and its probabilities (K, h, w) float32."""


def window_crops(
    windows: Sequence[tiling.Region], region: tiling.Region
) -> list[tuple[tiling.Region, tiling.Region]]:
    """The parts of ``windows`` inside ``region`` (top, left, h, w): (the part in the frame's
    coordinates, the same part in ``region``'s)."""
    top, left, rh, rw = region
    out = []
    for t, s, h, w in windows:
        a, b = max(t, top), min(t + h, top + rh)
        c, d = max(s, left), min(s + w, left + rw)
        if a < b and c < d:
            out.append(((a, c, b - a, d - c), (a - top, c - left, b - a, d - c)))
    return out


class WindowParts:
    """The parts of an (H, W) frame's feature windows in the regions given to :meth:`add`,
    with their raw pixels read by ``read`` (on the same grid): what a Dask chunk sends back.
    """

    def __init__(self, shape: tuple[int, int], read: tiling.WindowReader | None = None) -> None:
        self.windows = domain.windows(*shape)
        self.read = read
        self.parts: list[Part] = []

    def crops(self, region: tiling.Region) -> list[tuple[tiling.Region, tiling.Region]]:
        """The parts of the feature windows inside ``region``: (the part in the frame's
        coordinates, the same part in ``region``'s), for a caller that fetches only them."""
        return window_crops(self.windows, region)

    def add(self, region: tiling.Region, probabilities: np.ndarray) -> None:
        """Keep the parts of the feature windows inside ``region`` (top, left, h, w) of the
        frame, whose probabilities (K, h, w) float32 are given, and their raw pixels."""
        assert self.read is not None, "WindowParts.add needs a reader"
        for where, (t, s, h, w) in self.crops(region):
            probs = np.array(probabilities[:, t : t + h, s : s + w], np.float32)
            self.parts.append((where, np.asarray(self.read(*where)), probs))


class RegionQuality(WindowParts):
    """The feature windows of one (H, W) frame whose probabilities arrive region by region.

    ``shape``: (H, W) of the grid the probabilities are on; ``classes``: K. Call
    :meth:`add` with every computed region (regions may overlap: equal values),
    then :meth:`assess` once.
    """

    def __init__(self, guard: domain.Guard, shape: tuple[int, int], classes: int) -> None:
        super().__init__(shape)
        self.guard = guard
        self.probabilities = [np.zeros((classes, h, w), np.float32) for *_, h, w in self.windows]
        self._seen = [np.zeros((h, w), bool) for *_, h, w in self.windows]
        self._raw: list[np.ndarray] | None = None  # from add_parts: raw pixels came with them

    @classmethod
    def of(cls, seg: Segmenter, shape: tuple[int, int]) -> RegionQuality | None:
        """The collector for ``seg``'s model and a frame of ``shape`` (None: no statistics)."""
        guard = seg.guard
        return None if guard is None else cls(guard, shape, seg.info.classes)

    def add(self, region: tiling.Region, probabilities: np.ndarray) -> None:
        """Keep the parts of the feature windows inside ``region`` (top, left, h, w) of the
        frame, whose probabilities (K, h, w) float32 are given."""
        self._put(region, probabilities)

    def _put(
        self, region: tiling.Region, probabilities: np.ndarray, raw: np.ndarray | None = None
    ) -> None:
        top, left, rh, rw = region
        for i, (t, s, h, w) in enumerate(self.windows):
            a, b = max(t, top), min(t + h, top + rh)
            c, d = max(s, left), min(s + w, left + rw)
            if a < b and c < d:
                inside = (slice(a - top, b - top), slice(c - left, d - left))
                self.probabilities[i][:, a - t : b - t, c - s : d - s] = probabilities[
                    (slice(None), *inside)
                ]
                self._seen[i][a - t : b - t, c - s : d - s] = True
                if raw is not None and self._raw is not None:
                    self._raw[i][a - t : b - t, c - s : d - s] = raw[inside]

    def add_parts(self, parts: Sequence[Part]) -> None:
        """Keep :class:`WindowParts`' parts (raw pixels too: :meth:`assess` then reads none)."""
        for where, raw, probs in parts:
            if self._raw is None:
                wins = self.windows
                self._raw = [np.zeros((h, w, *raw.shape[2:]), raw.dtype) for *_, h, w in wins]
            self._put(where, probs, raw)

    @property
    def complete(self) -> bool:
        """Whether every pixel of every feature window has been given."""
        return all(bool(s.all()) for s in self._seen)

    def assess(
        self, read: tiling.WindowReader | None, scaling: processing.Scaling
    ) -> domain.Quality:
        """The frame's :class:`~unet_edge.domain.Quality`: ``read`` reads its raw pixels on
        the same grid (None: those given with :meth:`add_parts`), ``scaling`` is the whole
        frame's (as the kernel used)."""
        if not self.complete:
            raise UnetEdgeError(
                "the quality of an image was asked before all of its feature windows were "
                "computed; segment the whole image first"
            )
        if read is None:
            assert self._raw is not None, "no reader and no raw pixels given with the parts"
            raw = self._raw
        else:
            raw = [np.asarray(read(*win)) for win in self.windows]
        return self.guard.assess_windows(raw, self.probabilities, scaling)

    def record(self, read: tiling.WindowReader | None, scaling: processing.Scaling) -> list[Any]:
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
    """The image's :class:`~unet_edge.domain.Quality` as a lazy 0-d Dask array (computing it
    gives the Quality, or None for a model without statistics).

    ``probabilities``: the lazy (K, H, W) result of
    :func:`unet_edge.paths.dask.segment_dask` (``probabilities=True``) for ``image`` (the
    same (H, W[, C]) array), ``scaling`` the whole image's (None: measured here),
    ``pixel_size`` as given to ``segment_dask``. Only the feature windows are taken
    from either; with a resampling to the model's pixel size, from the model-grid parts
    that ``segment_dask``'s chunks return with their result (so ``probabilities`` must be
    its result as returned: :class:`~unet_edge.InputError` otherwise). Compute it
    together with the result (``dask.compute(mask, quality)``) and each chunk is
    computed once. Equals the in-memory score.
    """
    import dask.array as da

    from .. import scale

    guard = segmenter.guard
    if guard is None:
        return _lazy_object(_nothing, [], [])
    shape = (int(probabilities.shape[1]), int(probabilities.shape[2]))
    if scaling is None:
        scaling = segmenter.scaling_for(image)
    grid = scale.frame_grid(segmenter.info.pixel_size, pixel_size, shape)
    if grid is not None:  # the kernel ran on the model's grid: its parts came with the chunks
        pair = _pair(probabilities)
        classes = int(probabilities.shape[0])
        whole = functools.partial(_assess_parts, guard, grid.model_shape, classes, scaling)
        return _lazy_object(whole, [pair.__dask_keys__()], [pair])
    wins = domain.windows(*shape)
    probs = [_one_chunk(probabilities[:, t : t + h, s : s + w]) for t, s, h, w in wins]
    raw = [image[t : t + h, s : s + w] for t, s, h, w in wins]
    lazy = isinstance(image, da.Array)
    raw = [_one_chunk(r) for r in raw] if lazy else [np.asarray(r) for r in raw]
    assess = functools.partial(_assess, guard, scaling, None if lazy else raw)
    keys = [[_key(a) for a in raw] if lazy else [], [_key(p) for p in probs]]
    return _lazy_object(assess, keys, probs + (raw if lazy else []))


def _lazy_object(func: Callable[..., Any], args: list[Any], deps: Sequence[Any]) -> Any:
    """``func(*args)`` as a lazy 0-d Dask array of dtype object (computing it gives what
    ``func`` returns); ``args`` are (nested lists of) keys of chunks of the arrays ``deps``.

    An array, not a ``dask.delayed``: see the module's docstring."""
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    name = "unet-edge-quality-" + tokenize(func, args, [d.name for d in deps])
    graph = HighLevelGraph.from_collections(name, {(name,): (func, *args)}, dependencies=deps)
    return da.Array(graph, name, chunks=(), dtype=object, meta=np.empty((), object))


def _one_chunk(a: Any) -> Any:
    """The Dask array ``a`` in one chunk."""
    return a.rechunk(a.shape)


def _key(a: Any) -> Any:
    """The key of the one chunk of the Dask array ``a``."""
    keys = a.__dask_keys__()
    while isinstance(keys, list):
        keys = keys[0]
    return keys


def _pair(result: Any) -> Any:
    """The chunks of :func:`unet_edge.paths.dask.segment_dask`'s ``result`` of a resampled
    image as they come from the workers: (result chunk, :class:`WindowParts` parts)."""
    import dask.array as da

    found = [
        n for n in result.dask.dependencies.get(result.name, ()) if str(n).startswith(PAIR_PREFIX)
    ]
    if len(found) != 1:
        raise InputError(
            f"the quality of a resampled image was asked of the Dask array {result.name!r}, "
            "which is not segment_dask's result as it returns it; pass that result itself "
            "(its chunks carry the feature windows on the model's grid)"
        )
    return da.Array(result.dask, found[0], result.chunks, meta=np.empty((0,) * result.ndim, object))


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class _Found:
    """Parts as a lazy array's value: not a list, which Dask would take for chunks."""

    parts: list[Part]

    @classmethod
    def of(cls, blocks: Any) -> _Found:
        return cls(_parts_of(blocks))


def _parts_of(blocks: Any) -> list[Part]:
    """Every :class:`WindowParts` part in (nested lists of) segment_dask's pair chunks."""
    if isinstance(blocks, list):
        return [p for b in blocks for p in _parts_of(b)]
    return list(blocks[1])


def _assess_parts(
    guard: domain.Guard,
    shape: tuple[int, int],
    classes: int,
    scaling: processing.Scaling,
    blocks: Any,
) -> domain.Quality:
    """The Quality of a frame of ``shape`` (the model's grid) from every chunk's parts."""
    quality = RegionQuality(guard, shape, classes)
    quality.add_parts(_parts_of(blocks))
    return quality.assess(None, scaling)


def _assess(
    guard: domain.Guard,
    scaling: processing.Scaling,
    eager: Sequence[np.ndarray] | None,
    raw: Sequence[Any],
    probabilities: Sequence[Any],
) -> domain.Quality:
    raws = [np.asarray(r) for r in (eager if eager is not None else raw)]
    return guard.assess_windows(raws, [np.asarray(p) for p in probabilities], scaling)


class BandQuality:
    """The feature windows of a lazy (K, H, W) result computed one band of chunk rows at a
    time (the cluster path): what to compute with each band, and keeping it in ``quality``.

    ``resampled``: ``probabilities`` is :func:`unet_edge.paths.dask.segment_dask`'s result
    of an image resampled to the model's pixel size, whose chunks carry the parts on the
    model's grid (``quality`` is then on that grid); otherwise the windows are cropped
    from ``probabilities`` itself.
    """

    def __init__(self, quality: RegionQuality, probabilities: Any, resampled: bool) -> None:
        self.quality, self.probabilities = quality, probabilities
        self.pair = _pair(probabilities) if resampled else None
        self.tops = np.cumsum((0, *probabilities.chunks[1])).tolist()

    def _crops(self, band: int) -> list[tuple[tiling.Region, tiling.Region]]:
        r0, r1 = self.tops[band], self.tops[band + 1]
        return self.quality.crops((r0, 0, r1 - r0, int(self.probabilities.shape[2])))

    def lazy(self, band: int) -> list[Any]:
        """The lazy pieces to compute with chunk row ``band`` (Dask arrays)."""
        if self.pair is not None:
            row = self.pair.__dask_keys__()[0][band]
            return [_lazy_object(_Found.of, [row], [self.pair])]
        p = self.probabilities
        return [p[:, t : t + h, c : c + w] for (t, c, h, w), _ in self._crops(band)]

    def add(self, band: int, got: Sequence[Any]) -> None:
        """Keep the computed pieces ``got`` of :meth:`lazy` (``band``)."""
        if self.pair is not None:
            self.quality.add_parts(got[0].parts)
            return
        for (where, _), crop in zip(self._crops(band), got, strict=True):
            self.quality.add(where, crop)
