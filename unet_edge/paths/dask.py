"""Scale-out on Dask: the whole image's tile plan, run chunk by chunk with ``map_overlap``.

``dask.array.map_overlap(depth=halo + alignment, boundary="reflect")`` hands each chunk
its neighbours' pixels (dask's ``"reflect"`` repeats the edge pixel, the same
convention as ``cv2.BORDER_REFLECT`` used everywhere else). Inside a chunk
:func:`unet_edge.paths.windowed.run_region` computes the chunk's rectangle of the
*whole image's* plan: the network tiles have the whole image's shape and
origin (multiples of the ``2**depth`` alignment in its padded coordinates),
so every chunk sees the same pooling grid, and the kept output pixels depend
only on pixels within ``halo`` of the chunk plus the rest of their pooling
cells (less than ``alignment`` more pixels), which the overlap provides.
Chunks are multiples of the plan's stride (hence of the alignment), so
almost every network tile is computed by one chunk only.

:func:`label_dask` labels a Dask object mask chunk by chunk and merges the
objects across chunk borders: equal, id for id, to labelling it whole.

Each worker process opens one Segmenter per model and settings
(:func:`functools.lru_cache`) and reuses it for all its chunks; the model
file must be readable at the same path on every worker. dask, distributed
and zarr are the optional ``[dask]`` extra and are imported on first use.
"""

from __future__ import annotations

import functools
import operator
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import processing, scale, tiling
from ..errors import InputError
from .quality import PAIR_PREFIX, WindowParts, dask_quality
from .windowed import model_read, run_region

if TYPE_CHECKING:
    from ..config import Normalization
    from ..runtime import Segmenter
    from ..scale import Grid

DEFAULT_CHUNK = 2048


@functools.lru_cache(maxsize=4)
def worker_segmenter(
    model: str,
    provider: str = "cpu",
    batch_size: int | None = None,
    threads: int | None = None,
    tta: bool = False,
    precision: str = "fp32",
    normalization: Normalization | None = None,
) -> Segmenter:
    """The Segmenter of this process for a model and settings (opened once, then reused);
    ``normalization`` replaces the model's own, as the caller's Segmenter was given it."""
    from ..engines.options import ProviderOptions
    from ..runtime import Segmenter

    options = ProviderOptions(threads=threads, precision=precision)
    return Segmenter(
        model, provider, None, batch_size, options=options, tta=tta, normalization=normalization
    )


def aligned_chunks(size: int, axis: tiling.AxisPlan, target: int, halo: int) -> tuple[int, ...]:
    """Chunk sizes along one axis: multiples of the plan's stride near ``target``.

    A last chunk thinner than the halo is merged into the one before (Dask's
    overlap needs chunks at least as deep as the overlap).
    """
    step = axis.stride if axis.count > 1 else size
    chunk = max(step, (target // step) * step)
    sizes = [chunk] * (size // chunk)
    if size % chunk:
        sizes.append(size % chunk)
    if len(sizes) > 1 and sizes[-1] < halo:
        last = sizes.pop()
        sizes[-1] += last
    return tuple(sizes)


def _block(
    block: np.ndarray,
    *,
    block_info: dict[Any, Any],
    model: str,
    provider: str,
    batch_size: int | None,
    threads: int | None,
    tta: bool,
    precision: str,
    normalization: Normalization | None,
    plan: tiling.TilePlan,
    halo: int,
    probabilities: bool,
    scaling: processing.Scaling,
    grid: Grid | None = None,
) -> np.ndarray | tuple[np.ndarray, list[Any]]:
    seg = worker_segmenter(model, provider, batch_size, threads, tta, precision, normalization)
    (r0, r1), (c0, c1) = (
        block_info[None]["array-location"][-2:]
        if probabilities
        else block_info[None]["array-location"][:2]
    )
    # the block holds image rows [r0 - halo, r1 + halo) (mirrored past the borders)
    top, left = r0 - halo, c0 - halo

    def read(t: int, lft: int, h: int, w: int) -> np.ndarray:
        # Pixels of a network tile beyond the overlap only reach output pixels outside this
        # chunk (valid convolutions), which are discarded: any value will do there.
        out = np.zeros((h, w, *block.shape[2:]), block.dtype)
        a, b = max(t, top), min(t + h, top + block.shape[0])
        c, d = max(lft, left), min(lft + w, left + block.shape[1])
        if a < b and c < d:
            out[a - t : b - t, c - lft : d - lft] = block[a - top : b - top, c - left : d - left]
        return out

    region = (r0, c0, r1 - r0, c1 - c0)
    if grid is None:
        probs = run_region(seg, plan, read, region, scaling)
        return probs if probabilities else processing.to_mask(probs)
    # on the model's grid: the guard's windows are there, so the chunk sends their parts too
    kept = WindowParts(grid.model_shape, grid.reader(read)) if seg.guard else None
    probs = run_region(seg, plan, read, region, scaling, grid, kept)
    return (probs if probabilities else processing.to_mask(probs)), (kept.parts if kept else [])


def segment_dask(
    image: Any,
    model: str | os.PathLike[str] | None = None,
    *,
    segmenter: Segmenter | None = None,
    provider: str = "cpu",
    batch_size: int | None = None,
    threads: int | None = None,
    chunk: int = DEFAULT_CHUNK,
    probabilities: bool = False,
    scaling: processing.Scaling | None = None,
    pixel_size: Any = None,
    channel: int | None = None,
) -> Any:
    """A lazy Dask array of the mask (H, W) uint8, or probabilities (K, H, W) float32.

    Args:
        image: an (H, W) or (H, W, C) numpy array, Dask array or zarr array.
        model: the ONNX model path, readable by every worker.
        segmenter: an open Segmenter for ``model`` in this process; its tile
            plan for the whole image and its ``tta`` are used (default: one
            with auto tiles, without TTA).
        provider, batch_size, threads: for each worker's Segmenter.
        chunk: the wanted chunk side; rounded to a multiple of the plan's stride.
        probabilities: return probabilities instead of the mask.
        scaling: the whole image's scaling, if already measured
            (``segmenter.scaling_for(image)``); None: measured here.
        pixel_size: the image's (µm, a Calibration or a Rescale): segmented at the model's
            pixel size, the result on its grid (:mod:`unet_edge.scale`); None: as it is.
        channel: the channel (last axis) a 1-channel model segments (None: the Segmenter's
            ``channel``), taken lazily and refused as :meth:`Segmenter.segment` refuses it.

    The values equal ``segmenter.predict``/``segment`` on the whole image.
    Compute with any Dask scheduler, e.g. a ``dask.distributed`` cluster.
    """
    from ..runtime import Segmenter

    seg = segmenter or Segmenter(model, provider, batch_size=batch_size)
    kw: dict[str, Any] = {"batch_size": batch_size, "threads": threads, "chunk": chunk}
    kw.update(probabilities=probabilities, scaling=scaling, pixel_size=pixel_size)
    return run_dask(seg, pick_lazy(seg, image, channel), model, **kw)


def pick_lazy(seg: Segmenter, image: Any, channel: int | None) -> Any:
    """``image`` (numpy, Dask or zarr, (H, W) or (H, W, C)) as a Dask array with only
    ``channel`` (None: the Segmenter's) of its last axis, lazily; checked from its shape
    alone by the rule of :meth:`Segmenter.pick_channel` (a stand-in reads no pixel)."""
    import dask.array as da

    image = processing.as_image(image)
    arr = image if isinstance(image, da.Array) else da.from_array(image)
    if arr.ndim not in (2, 3):
        raise InputError(f"expected an (H, W) or (H, W, C) image, got shape {arr.shape}")
    picked = seg.channel if channel is None else channel
    if picked is None:
        return arr
    stand_in = np.broadcast_to(np.zeros((), arr.dtype), arr.shape)  # no memory
    taken = seg.pick_channel(stand_in, channel)  # refused here as in memory
    return arr[..., picked] if arr.ndim == 3 and np.ndim(taken) == 2 else arr


def run_dask(
    seg: Segmenter,
    arr: Any,
    model: str | os.PathLike[str] | None = None,
    *,
    batch_size: int | None = None,
    threads: int | None = None,
    chunk: int = DEFAULT_CHUNK,
    probabilities: bool = False,
    scaling: processing.Scaling | None = None,
    pixel_size: Any = None,
) -> Any:
    """:func:`segment_dask` of a Dask array ``arr`` that the model takes as it is (its
    channel, if any, already picked): no channel is picked here, not even ``seg``'s."""
    model_path = str(Path(model).resolve()) if model is not None else str(seg.model_path)
    h, w = int(arr.shape[0]), int(arr.shape[1])
    if scaling is None:  # the whole image's statistics, from one strided pass
        scaling = seg.scaling_for(arr)
    grid = scale.frame_grid(seg.info.pixel_size, pixel_size, (h, w))
    plan = seg.plan_for(grid.model_shape if grid else (h, w))
    # A valid U-Net's output pixel depends on inputs up to the halo away *plus* the rest of
    # its pooling cells (up to alignment - 1 px more), so the overlap is halo + alignment.
    halo = plan.halo + plan.alignment
    halo = grid.depth(halo) if grid else halo  # that many model pixels, on the input's grid
    if min(h, w) <= halo:
        raise InputError(
            f"image {h}x{w} is not larger than the overlap {halo}; use Segmenter.predict"
        )
    chunks = (aligned_chunks(h, plan.y, chunk, halo), aligned_chunks(w, plan.x, chunk, halo))
    chunks = grid.chunks(chunk, halo) if grid else chunks
    kw = _worker_settings(seg, model_path, batch_size, threads) | {"plan": plan, "scaling": scaling}
    kw["grid"] = grid
    return _map_overlap(arr, chunks, halo, probabilities, seg.info.classes, kw)


def _worker_settings(
    seg: Segmenter, model: str, batch_size: int | None, threads: int | None
) -> dict[str, Any]:
    """The arguments of :func:`worker_segmenter` that make each worker compute as ``seg``
    does: same provider, precision and test-time augmentation."""
    return {
        "model": model,
        "provider": seg.provider,
        "batch_size": batch_size,
        "threads": threads,
        "tta": seg.tta,
        "precision": seg.compute_precision,
        "normalization": seg.info.normalization,
    }


def _map_overlap(
    arr: Any,
    chunks: tuple[tuple[int, ...], tuple[int, ...]],
    halo: int,
    probabilities: bool,
    classes: int,
    block_kw: dict[str, Any],
) -> Any:
    """:func:`_block` over ``arr`` cut into ``chunks`` (rows, columns), ``halo`` px of overlap.

    ``block_kw`` holds :func:`_block`'s other keyword arguments. Returns the
    lazy mask (H, W) uint8, or probabilities (``classes``, H, W) float32.
    """
    import dask.array as da

    arr = arr.rechunk(chunks + ((arr.shape[2],) if arr.ndim == 3 else ()))
    depth = {0: halo, 1: halo, **({2: 0} if arr.ndim == 3 else {})}
    if probabilities:
        out_chunks: tuple[tuple[int, ...], ...] = ((classes,), *chunks)
        extra: dict[str, Any] = {"new_axis": 0} if arr.ndim == 2 else {}
    else:
        out_chunks, extra = chunks, {}
    if arr.ndim == 3:
        extra["drop_axis"] = 2
        if probabilities:
            extra["new_axis"] = 0
    out = da.map_overlap(
        _block,
        arr,
        depth=depth,
        boundary="reflect",
        trim=False,
        allow_rechunk=False,
        chunks=out_chunks,
        dtype=np.float32 if probabilities else np.uint8,
        meta=np.empty((0,) * len(out_chunks), np.float32 if probabilities else np.uint8),
        **extra,
        token=PAIR_PREFIX.rstrip("-") if block_kw.get("grid") else None,
        halo=halo,
        probabilities=probabilities,
        **block_kw,
    )
    if block_kw.get("grid") is None:
        return out
    # chunks (result, parts of the guard's windows on the model's grid: paths.quality's)
    meta = np.empty((0,) * out.ndim, out.dtype)
    return out.map_blocks(operator.itemgetter(0), dtype=out.dtype, meta=meta)


def label_dask(
    objects: Any, *, min_size: int = 0, split: str | None = None, border: Any = None
) -> Any:
    """A lazy Dask array (H, W) uint32 of the instance labels of a bool object mask.

    Each chunk is labelled on its own (:func:`unet_edge.objects.labels.label`),
    the ids on facing chunk edges are merged by union-find and the objects
    numbered ``1..N`` in raster order of their first pixel after ``min_size``
    (pixels, counted over the whole image): the result equals
    ``label(objects.compute(), min_size=min_size)`` exactly
    (:mod:`unet_edge.objects.merge`). The chunks' local labels are kept (in the
    cluster's memory) until the merge is done, and ``objects`` is computed once
    per compute of the result: persist it first if it is expensive and used again.
    ``split`` (a watershed) is refused here (the windowed path does it exactly).

    ``objects``: an (H, W) bool Dask or numpy array, e.g. from :func:`segment_dask`'s
    mask: ``mask.map_blocks(object_mask, object_classes)``. ``border``: a three-class
    model's border class as the same kind of mask (``object_mask(mask,
    info.border_classes)``): its pixels are given to the nearest object as
    :func:`unet_edge.objects.labels.label_classes` does in memory, chunk by chunk with an
    overlap of final labels (:mod:`unet_edge.objects.border_blocks`), exactly.
    """
    import dask
    import dask.array as da

    _refuse_split(split)
    arr = objects if isinstance(objects, da.Array) else da.from_array(np.asarray(objects))
    if arr.ndim != 2 or arr.dtype != np.bool_:
        raise InputError(
            f"labelling takes a bool (H, W) object mask, got {arr.dtype} with shape {arr.shape}"
        )
    tops, lefts = (np.cumsum((0, *c[:-1])) for c in arr.chunks)
    blocks = arr.to_delayed()
    local = [[dask.delayed(_label_chunk)(b) for b in row] for row in blocks]
    grid = [
        [
            dask.delayed(_summary)(local[i][j], (int(t), int(lf), h, w), int(arr.shape[1]))
            for j, (lf, w) in enumerate(zip(lefts, arr.chunks[1], strict=True))
        ]
        for i, (t, h) in enumerate(zip(tops, arr.chunks[0], strict=True))
    ]
    tables = dask.delayed(_chunk_tables, nout=blocks.size)(grid, min_size)
    out = [
        [
            da.from_delayed(
                dask.delayed(_lookup)(local[i][j], tables[i * blocks.shape[1] + j]),
                shape=(h, w),
                dtype=np.uint32,
                meta=np.empty((0, 0), np.uint32),
            )
            for j, w in enumerate(arr.chunks[1])
        ]
        for i, h in enumerate(arr.chunks[0])
    ]
    if border is None:
        return da.block(out)
    from ..objects.border_blocks import dask_give_border

    return dask_give_border(da.block(out), border)


def _refuse_split(split: str | None) -> None:
    """A watershed split is done window by window (objects.split_blocks), not chunk by chunk."""
    if split is not None and split != "none":
        raise InputError(
            f"label_dask does not split objects ({split!r}) chunk by chunk; label without "
            "the split, or segment the TIFF window by window (segment_file(large=True)), "
            "which splits exactly",
            option="split",
        )


def _label_chunk(objects: np.ndarray) -> np.ndarray:
    """Local ids 1..n of one chunk (uint32)."""
    from ..objects.labels import label

    return label(np.ascontiguousarray(objects))


def _summary(local: np.ndarray, region: tuple[int, int, int, int], width: int) -> Any:
    from ..objects.merge import summarize

    return summarize(local, region, width)


def _chunk_tables(grid: list[list[Any]], min_size: int) -> list[np.ndarray]:
    """Per chunk (row by row), the table local id -> final id (uint32, entry 0 = 0)."""
    from ..objects.merge import number_grid

    offsets, numbering = number_grid(grid, min_size)
    tables = []
    for row, offs in zip(grid, offsets, strict=True):
        for s, off in zip(row, offs, strict=True):
            table = numbering.lut[off : off + s.n + 1].copy()
            table[0] = 0
            tables.append(table)
    return tables


def _lookup(local: np.ndarray, table: np.ndarray) -> np.ndarray:
    return table[local]


def _open_lazy(src: Any, seg: Segmenter, channel: int | None) -> tuple[Any, Any, dict[str, Any]]:
    """An image (an array, or a TIFF or zarr path) as a lazy Dask array, the TIFF's
    :class:`unet_edge.io.TiffWindows` (its calibration; else None) and its provenance
    entries ``axes`` (and ``axes_note``). A TIFF is read as the in-memory path reads it for
    ``seg``'s model (:func:`unet_edge.paths.windowed.model_read`): ``channel`` (None: the
    Segmenter's) alone, or RGB stored grey as grey, checked window by window."""
    import dask.array as da

    if not isinstance(src, (str, os.PathLike)):
        return pick_lazy(seg, src, channel), None, {}
    src = Path(src)
    if src.suffix.lower() not in (".tif", ".tiff"):
        return pick_lazy(seg, da.from_zarr(str(src)), channel), None, {}
    from ..io import TiffWindows, image_header

    channel = seg.channel if channel is None else channel
    picked, grey, axes = model_read(seg, image_header(src), channel)
    win = TiffWindows(src, channel=picked, grey=grey)  # picklable: each worker reads its own
    meta = np.empty((0,) * win.ndim, win.dtype)
    chunks = (DEFAULT_CHUNK,) * 2 + win.shape[2:]
    return da.from_array(win, chunks=chunks, meta=meta), win, axes


def segment_to_zarr(
    image: Any,
    output: str | os.PathLike[str],
    model: str | os.PathLike[str] | None = None,
    *,
    segmenter: Segmenter | None = None,
    overwrite: bool = False,
    **kwargs: Any,
) -> Path:
    """Compute :func:`segment_dask` into a zarr array at ``output``, with provenance attributes.

    ``image`` may also be a TIFF path (read lazily through tifffile's zarr
    store) or a zarr path; a TIFF's calibration is its pixel size unless ``pixel_size`` is
    given, as for :func:`unet_edge.paths.files.segment_file`. The array's attributes hold
    ``unet_edge``: the Segmenter's provenance (model name and hash, provider, precision, tile
    plan of the grid the kernel ran on, TTA, version), ``rescale`` when the image was
    resampled to the model's pixel size (as the file paths record it) and ``quality``, the
    image's score against the model's training data
    (:func:`unet_edge.paths.quality.dask_quality`, computed with the result).
    ``tta=True`` asks the Segmenter made here (without ``segmenter``) for test-time
    augmentation; a given one brings its own. ``channel`` as for :func:`segment_dask`; a
    TIFF is read as the in-memory path reads it (RGB stored grey as grey), its ``axes`` kept.
    """
    import dask
    import dask.array as da
    import zarr

    from ..errors import OutputExistsError
    from ..runtime import Segmenter

    out = Path(output)
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} exists; pass overwrite=True to replace it")
    tta = kwargs.pop("tta", False)  # for the Segmenter made here; the workers do as it does
    seg = segmenter or Segmenter(model, kwargs.pop("provider", "cpu"), tta=tta)
    # win: a TIFF's TiffWindows; axes: its provenance entries, as in memory
    image, win, axes = _open_lazy(image, seg, kwargs.pop("channel", None))
    noted = _rescale_noted(seg, win, kwargs, (int(image.shape[0]), int(image.shape[1]))) | axes
    scaling = seg.scaling_for(image)  # measured once: for the result and its provenance
    wanted = kwargs.pop("probabilities", False)
    path = model if model is not None else seg.model_path
    # the mask is taken from the probabilities: the feature windows come from the same chunks
    probs = run_dask(seg, image, path, scaling=scaling, probabilities=True, **kwargs)
    result = probs if wanted else probs.map_blocks(processing.to_mask, drop_axis=0, dtype=np.uint8)
    quality = dask_quality(probs, image, seg, scaling, kwargs.get("pixel_size"))
    plan = noted.pop("plan")  # what segment_dask ran: on the model's grid when resampled
    chunks = tuple(c[0] for c in result.chunks)
    z = zarr.open_array(str(out), mode="w", shape=result.shape, dtype=result.dtype, chunks=chunks)
    output = "probabilities" if result.ndim == 3 else "mask"
    prov = seg.result_provenance(plan, [scaling.to_dict()], output=output, **noted)
    z.attrs["unet_edge"] = prov
    target: Any = z  # zarr arrays take numpy-style slice assignment
    _, scored = dask.compute(da.store(result, target, lock=False, compute=False), quality)
    if scored is not None:
        z.attrs["unet_edge"] = {**prov, "quality": [scored.to_dict()]}
    return out


def _rescale_noted(
    seg: Segmenter, win: Any, kwargs: dict[str, Any], shape: tuple[int, int]
) -> dict[str, Any]:
    """What :func:`segment_to_zarr` records of the resampling, and its ``plan``: the tile
    plan :func:`segment_dask` runs (on the model's grid when resampled). A TIFF's (``win``)
    calibration decides unless ``kwargs`` states ``pixel_size``: resolved here into
    ``kwargs["pixel_size"]``, a :class:`unet_edge.scale.Rescale` or None."""
    stated = kwargs.get("pixel_size")
    noted: dict[str, Any] = {}
    if win is not None and not isinstance(stated, scale.Rescale):
        kwargs["pixel_size"] = scale.resolve(seg.info.pixel_size, stated, win.calibration)
        noted |= {"calibration_note": win.calibration_note} if win.calibration_note else {}
        noted["source"] = win.path.name  # as the file paths record it
    grid = scale.frame_grid(seg.info.pixel_size, kwargs.get("pixel_size"), shape)
    noted |= {"rescale": grid.rescale.to_dict()} if grid else {}
    noted["plan"] = seg.plan_for(grid.model_shape if grid else shape)
    noted["quality"] = None  # filled in once the result is computed
    return noted
