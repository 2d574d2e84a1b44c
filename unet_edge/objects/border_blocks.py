"""A three-class model's border class given back block by block, equal to the whole image.

:func:`unet_edge.objects.labels.give_border` gives each border pixel that is
background and within ``reach`` (5 px) of an object the id of its nearest
object, by OpenCV's ``distanceTransformWithLabels`` (5x5 chamfer mask, weights
1, 1.4 and 2.1969 in 16-bit fixed point, ``DIST_LABEL_PIXEL``). That transform
is two raster scans (forward, then backward) in which a pixel takes the value
and label of the *first* neighbour, in a fixed order, that strictly lowers its
value. So, for a pixel ``p`` whose distance ``d(p) <= reach``:

* its value is the cost of a cheapest path of mask steps from an object pixel;
  every step moves at most as many pixels (Chebyshev) as it costs, so the path,
  and every pixel whose value decided a comparison won at ``p`` or on the path,
  lies within ``d(p) + 2`` px of ``p``;
* a crop only removes object pixels (outside it is "no object", as outside the
  image), so values in a crop are never lower than in the whole image, and are
  equal wherever the cheapest paths lie inside the crop; a neighbour that lost a
  comparison in the whole image still loses it in the crop;
* ties go to the first neighbour in scan order, and the scan order is relative
  to the pixel (translation invariant), so a crop that holds all of the above
  gives the tie to the same object pixel; its id is the object's, whatever the
  crop's numbering of object pixels.

Hence a block labelled with its FINAL ids and border mask, plus a halo of
:data:`HALO_PX` px on each side (cut at the image's edges), gives exactly the
whole image's result inside the block. :data:`HALO_PX` is 16: ``reach + 2`` is 7,
the rest is margin. The tests build cases to break it (ties at equal distance
from two objects across a block border, bands on block corners, odd block
sizes) and show that a halo of 2 px does break it.

:func:`give_border_bands` does this for full-width bands streamed top to bottom
(the window-by-window and cluster paths), :func:`give_border_chunk` for a Dask
chunk with its overlap, :func:`give_border_blocks` for a grid of blocks in memory
(tests, and masks that fit in memory), :func:`measure_bands` measures the objects
once they are whole; :class:`unet_edge.objects.second_pass.SecondPass` chains them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from ..errors import InputError
from .labels import BORDER_REACH_PX, give_border
from .measure import ObjectSums

__all__ = [
    "HALO_PX",
    "dask_give_border",
    "give_border_bands",
    "give_border_blocks",
    "give_border_chunk",
    "measure_bands",
]

#: Rows/columns of final labels and border mask needed around a block (module docstring).
HALO_PX = 16


def _check_halo(halo: int, reach: float) -> None:
    """Refuse a halo too thin for ``reach`` (the result would depend on the blocks)."""
    if halo < int(np.ceil(reach)) + 2:
        raise InputError(
            f"a halo of {halo} px cannot give border pixels back up to {reach:g} px away "
            f"exactly; use at least {int(np.ceil(reach)) + 2} px (HALO_PX is {HALO_PX})"
        )


def give_border_bands(
    bands: Iterable[tuple[np.ndarray, np.ndarray]],
    reach: float = BORDER_REACH_PX,
    halo: int = HALO_PX,
    *,
    check: bool = True,
) -> Iterator[np.ndarray]:
    """Full-width bands of the whole image's ``give_border`` result, top to bottom.

    ``bands``: (labels, border) pairs, top to bottom, each (h, W): the FINAL labels
    (uint, after merging, minimum size and split) and the bool border mask of the same
    rows. Yields each band's labels (same h and dtype) with the border given back, as
    ``give_border`` on the whole image would; a band is yielded once ``halo`` rows
    below it have arrived (or the image ended). Memory: the bands waiting for those
    rows plus ``halo`` rows above them. ``check=False`` skips the halo check (tests).
    """
    if check:
        _check_halo(halo, reach)
    buf_lab: np.ndarray | None = None  # rows [start, start + len) of the image
    buf_bor: np.ndarray | None = None
    start = 0
    waiting: list[tuple[int, int]] = []  # (top, height) of bands not yet yielded
    end = 0  # rows received so far

    def emit(top: int, h: int) -> np.ndarray:
        assert buf_lab is not None and buf_bor is not None
        lo, hi = max(start, top - halo), min(end, top + h + halo)
        done = give_border(
            buf_lab[lo - start : hi - start], buf_bor[lo - start : hi - start], reach
        )
        return done[top - lo : top - lo + h].astype(buf_lab.dtype, copy=False)

    for labels, border in bands:
        labels, border = np.asarray(labels), np.asarray(border, bool)
        if labels.shape != border.shape or labels.ndim != 2:
            raise InputError(
                f"a band of labels {labels.shape} and border mask {border.shape}: give both "
                "(h, W) for the same rows"
            )
        if buf_lab is None or buf_bor is None:
            buf_lab, buf_bor = labels, border
        else:
            buf_lab = np.concatenate([buf_lab, labels])
            buf_bor = np.concatenate([buf_bor, border])
        waiting.append((end, labels.shape[0]))
        end += labels.shape[0]
        while waiting and sum(waiting[0]) + halo <= end:
            yield emit(*waiting.pop(0))
            keep = max(start, (waiting[0][0] if waiting else end) - halo)
            buf_lab, buf_bor = buf_lab[keep - start :], buf_bor[keep - start :]
            start = keep
    while waiting:
        yield emit(*waiting.pop(0))


def give_border_chunk(
    labels: np.ndarray, border: np.ndarray, reach: float = BORDER_REACH_PX
) -> np.ndarray:
    """``give_border`` of one Dask chunk with its overlap (labels uint32, border bool, the
    same shape): the whole array's result on the chunk's own pixels, once the overlap is
    :data:`HALO_PX` deep (or cut by the array's edge); the overlap is trimmed by Dask."""
    return give_border(labels, border, reach)


def give_border_blocks(
    labels: np.ndarray,
    border: np.ndarray,
    rows: Sequence[int],
    cols: Sequence[int],
    reach: float = BORDER_REACH_PX,
    halo: int = HALO_PX,
    *,
    check: bool = True,
) -> np.ndarray:
    """``give_border(labels, border)`` computed block by block (blocks of ``rows`` x ``cols``
    px, each with a ``halo`` px margin cut at the edges): equal to it for a halo of at
    least ``ceil(reach) + 2``. Holds the whole image: for tests and in-memory grids."""
    if check:
        _check_halo(halo, reach)
    out = np.empty(labels.shape, np.uint32)
    H, W = labels.shape
    tops = np.cumsum([0, *rows[:-1]]).tolist()
    lefts = np.cumsum([0, *cols[:-1]]).tolist()
    for t, h in zip(tops, rows, strict=True):
        for lf, w in zip(lefts, cols, strict=True):
            a, b = max(0, t - halo), min(H, t + h + halo)
            c, d = max(0, lf - halo), min(W, lf + w + halo)
            part = give_border(labels[a:b, c:d], border[a:b, c:d], reach)
            out[t : t + h, lf : lf + w] = part[t - a : t - a + h, lf - c : lf - c + w]
    return out


def dask_give_border(labels: Any, border: Any, reach: float = BORDER_REACH_PX) -> Any:
    """The lazy Dask labels (H, W) uint32 with ``border`` (a bool Dask or numpy array of the
    same shape) given back chunk by chunk (:func:`give_border_chunk`, overlap
    :data:`HALO_PX`): equal to ``give_border`` on the computed arrays."""
    import dask.array as da

    border = border if isinstance(border, da.Array) else da.from_array(np.asarray(border, bool))
    if tuple(border.shape) != tuple(labels.shape) or border.dtype != np.bool_:
        raise InputError(
            f"the border mask is {border.dtype} {tuple(border.shape)}, expected bool "
            f"{tuple(labels.shape)} like the labels; build it with object_mask(mask, "
            "border_classes)"
        )
    _check_halo(HALO_PX, reach)
    chunks = tuple(tuple(max(c, HALO_PX) for c in axis) for axis in labels.chunks)
    if chunks != labels.chunks:  # a chunk thinner than the overlap: merge it into a neighbour
        labels = labels.rechunk(_thick(labels.chunks))
    border = border.rechunk(labels.chunks)
    return da.map_overlap(
        give_border_chunk,
        labels,
        border,
        depth=HALO_PX,
        boundary="none",
        trim=True,
        dtype=np.uint32,
        meta=np.empty((0, 0), np.uint32),
        reach=reach,
    )


def _thick(chunks: tuple[tuple[int, ...], ...]) -> tuple[tuple[int, ...], ...]:
    """``chunks`` with every chunk thinner than :data:`HALO_PX` merged into the one before
    (or after, for the first); an axis shorter than the halo stays one chunk."""
    out = []
    for axis in chunks:
        sizes: list[int] = []
        for c in axis:
            if sizes and (c < HALO_PX or sizes[-1] < HALO_PX):
                sizes[-1] += c
            else:
                sizes.append(c)
        out.append(tuple(sizes))
    return tuple(out)


def measure_bands(
    bands: Iterable[np.ndarray],
    sums: ObjectSums,
    prob: Callable[[int, int], np.ndarray | None],
    raw: Callable[[int, int], np.ndarray | None],
) -> Iterator[np.ndarray]:
    """Each full-width band of FINAL labels (top to bottom) yielded unchanged, once added to
    ``sums`` with the rows above and below it as its ring, so ``sums`` ends equal to
    measuring the whole label image (:meth:`ObjectSums.add`); the objects are whole here
    (border given back), which the window-by-window sums of pass 1 cannot see.

    ``prob(top, h)`` / ``raw(top, h)``: the object probability (h, W) and raw intensity
    (h, W[, C]) of those rows, or None. Memory: two bands.
    """
    held: np.ndarray | None = None
    above: np.ndarray | None = None
    top = 0

    def add(band: np.ndarray, below: np.ndarray | None) -> None:
        h, w = band.shape
        ring = np.zeros((h + 2, w + 2), band.dtype)  # no neighbour outside the image
        ring[1:-1, 1:-1] = band
        for row, side in ((0, above), (h + 1, below)):
            if side is not None:
                ring[row, 1:-1] = side
        sums.add(band, top, 0, prob=prob(top, h), raw=raw(top, h), ring=ring)

    for band in bands:
        if held is not None:
            add(held, band[0])
            yield held
            above, top = held[-1], top + held.shape[0]
        held = band
    if held is not None:
        add(held, None)
        yield held
