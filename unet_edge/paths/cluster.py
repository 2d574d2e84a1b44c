"""Image files segmented on a Dask cluster: the windowed path with the bands computed remotely.

``unet-edge run --dask ADDRESS`` (a running scheduler) or ``--dask local[:N]``
(a ``distributed.LocalCluster`` of N worker processes, made for the run) sends
the network work to the cluster: the TIFF is read window by window by the
workers themselves (:class:`unet_edge.io.TiffWindows` pickles; the file must be
readable at the same path on every worker, as must the model), each chunk is
segmented with the whole image's tile plan and scaling
(:func:`unet_edge.paths.dask.segment_dask`, exact), and the mask comes back to
this process one band of chunks at a time, a few bands ahead, to be written as
the windowed path writes it (:func:`unet_edge.io.write_tiff_strips`). The
instance labels and measurements are made here from those bands, by the same
code as the windowed path (:class:`unet_edge.paths.windowed.WindowObjects`):
labelling costs a few percent of segmenting, and the bands are here anyway.
So the outputs equal the single-process ones, byte for byte in the images.

distributed is in the ``[dask]`` extra and imported on first use.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import io, processing
from ..errors import InputError
from .dask import DEFAULT_CHUNK, run_dask
from .quality import BandQuality, RegionQuality
from .windowed import ObjectFiles, WindowObjects, read_for_model, write_outputs

if TYPE_CHECKING:
    from ..imagemeta import Calibration
    from ..runtime import Segmenter
    from ..scale import Rescale

_LOCAL = re.compile(r"local(?::(\d+))?", re.IGNORECASE)


def _import_distributed() -> Any:
    try:
        import distributed
    except ModuleNotFoundError:
        raise InputError(
            "segmenting on a Dask cluster needs dask and distributed "
            "(pip install 'unet-edge[dask]')",
            option="dask",
        ) from None
    return distributed


@contextlib.contextmanager
def connect(spec: str) -> Iterator[Any]:
    """A ``distributed.Client`` for ``spec``: ``local`` or ``local:N`` (a LocalCluster of N
    worker processes, one per core by default, closed at the end) or a scheduler address
    (``tcp://host:8786``, ``host:8786``)."""
    distributed = _import_distributed()
    found = _LOCAL.fullmatch(spec.strip())
    if found is None:
        if not spec.strip() or any(c.isspace() for c in spec.strip()):
            raise InputError(
                f"{spec!r} is not a Dask scheduler address; give one like tcp://host:8786, "
                "or local or local:N for N workers on this machine",
                option="dask",
            )
        try:
            client = distributed.Client(spec.strip(), timeout="20s")
        except OSError as e:
            raise InputError(
                f"no Dask scheduler answers at {spec!r} ({e}); start one (dask scheduler) "
                "or use local:N",
                option="dask",
            ) from None
        with client:
            yield client
        return
    workers = int(found[1]) if found[1] else (os.cpu_count() or 1)
    if workers < 1:
        raise InputError(
            f"local:{workers} asks for no worker; give local:N with N >= 1", option="dask"
        )
    cluster = distributed.LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
    )
    with cluster, distributed.Client(cluster) as client:
        yield client


def segment_windows_dask(
    seg: Segmenter,
    src: io.TiffWindows,
    output: Path,
    *,
    client: Any,
    compression: str | None = "zlib",
    progress: Callable[[int, int], None] | None = None,
    ome: bool = False,
    objects: ObjectFiles | None = None,
    chunk: int = DEFAULT_CHUNK,
    threads: int | None = None,
    rescale: Rescale | None = None,
    calibration: Calibration | None = None,
    channel: int | None = None,
) -> dict[str, Any]:
    """:func:`unet_edge.paths.windowed.segment_windows` with the segmentation on the Dask
    cluster of ``client``; returns the provenance written into the outputs.

    ``chunk``: the chunk side (rounded to the tile plan's stride); ``threads``:
    inference threads per worker (None: the engine's default, every core; see
    :func:`worker_threads`); ``rescale``: the image's resampling to the model's pixel
    size; ``calibration``: the outputs' (None: ``src``'s); ``channel``: None: ``src``'s,
    else the Segmenter's (:func:`unet_edge.paths.windowed.read_for_model`). The outputs
    equal :func:`~unet_edge.paths.windowed.segment_windows`'.
    """
    with read_for_model(seg, src, channel) as (src, axes):
        kw: dict[str, Any] = {"compression": compression, "progress": progress, "ome": ome}
        kw.update(objects=objects, chunk=chunk, threads=threads, calibration=calibration)
        return _segment_windows_dask(seg, src, output, client, rescale, axes, **kw)


def _segment_windows_dask(
    seg: Segmenter,
    src: io.TiffWindows,
    output: Path,
    client: Any,
    rescale: Rescale | None,
    axes: dict[str, Any],
    *,
    compression: str | None,
    progress: Callable[[int, int], None] | None,
    ome: bool,
    objects: ObjectFiles | None,
    chunk: int,
    threads: int | None,
    calibration: Calibration | None,
) -> dict[str, Any]:
    """:func:`segment_windows_dask` of ``src`` read as the model takes it; ``axes``: its
    provenance entries (:func:`unet_edge.paths.windowed.read_for_model`)."""
    h, w = src.shape[0], src.shape[1]
    scaling = seg.scaling_for(src)
    plan = seg.plan_for(rescale.grid((h, w)).model_shape if rescale else (h, w))
    lazy = run_dask(  # src is read as the model takes it: no channel picked again
        seg,
        _lazy(src, chunk),
        seg.model_path,
        chunk=chunk,
        probabilities=True,
        scaling=scaling,
        threads=threads,
        pixel_size=rescale,
    )
    found = WindowObjects.for_source(seg, src, objects)
    rows = lazy.chunks[1][0]
    # the domain guard's windows, on the grid the kernel runs on (the model's, resampled)
    quality = RegionQuality.of(seg, rescale.grid((h, w)).model_shape if rescale else (h, w))
    band_quality = None if quality is None else BandQuality(quality, lazy, rescale is not None)
    bands = _bands(client, lazy, seg.info.classes, found, progress, band_quality)
    noted: dict[str, Any] = {"rescale": rescale.to_dict()} if rescale else {}
    noted |= {"calibration_note": src.calibration_note} if src.calibration_note else {}
    noted |= axes  # as in memory: the file's axes, the channel picked, grey stored as RGB
    noted["quality"] = None  # filled in once every band is here (unet_edge.paths.quality)
    prov = seg.result_provenance(plan, [scaling.to_dict()], source=src.path.name, **noted)
    prov["dask"] = {"workers": len(client.scheduler_info().get("workers", {})), "chunk": rows}
    kw: dict[str, Any] = {"ome": ome, "compression": compression, "calibration": calibration}
    if quality is not None:

        def late() -> dict[str, Any]:  # prov too: the objects outputs and the caller see it
            # resampled: the raw pixels came with the parts, from the model's grid
            prov["quality"] = quality.record(None if rescale else src.read_window, scaling)
            return {"quality": prov["quality"]}

        kw["late"] = late
    write_outputs(output, bands, src, rows, prov, found, **kw)
    return prov


def _lazy(src: io.TiffWindows, chunk: int) -> Any:
    """``src`` as a Dask array the workers read themselves (it pickles without its file)."""
    import dask.array as da

    chunks = (chunk, chunk, *src.shape[2:])
    return da.from_array(src, chunks=chunks, meta=np.empty((0,) * src.ndim, src.dtype))


def _bands(
    client: Any,
    probs: Any,
    classes: int,
    objects: WindowObjects | None,
    progress: Callable[[int, int], None] | None,
    quality: BandQuality | None = None,
) -> Iterator[np.ndarray]:
    """The saved mask, one band of chunk rows at a time, computed on the cluster a few bands
    ahead; each band's class mask (and its objects' probability) handed to ``objects``, and
    the probabilities of the feature windows in it (only those come back) to ``quality``."""
    mask = probs.map_blocks(processing.to_mask, drop_axis=0, dtype=np.uint8)
    prob = None
    if objects is not None and objects.files.table is not None:
        prob = probs[objects.classes].sum(axis=0)  # as WindowObjects.probability sums
    tops = np.cumsum((0, *probs.chunks[1])).tolist()
    total = len(tops) - 1
    ahead = max(2, len(client.scheduler_info().get("workers", {})))
    pending: deque[tuple[int, list[Any]]] = deque()

    def submit(i: int) -> None:
        r0, r1 = tops[i], tops[i + 1]
        lazy = [mask[r0:r1]] + ([prob[r0:r1]] if prob is not None else [])
        pending.append((len(lazy), client.compute(lazy + (quality.lazy(i) if quality else []))))

    for i in range(min(ahead, total)):
        submit(i)
    for i in range(total):
        n, futures = pending.popleft()
        got = client.gather(futures)
        if i + ahead < total:
            submit(i + ahead)
        if quality is not None:  # the feature windows' pieces come last
            quality.add(i, got[n:])
        band = got[0]
        if objects is not None:
            objects.add((tops[i], 0, *band.shape), band, got[1] if prob is not None else None)
        if progress is not None:
            progress(i + 1, total)
        yield processing.mask_to_image(band, classes)


def worker_threads(spec: str) -> int | None:
    """Inference threads per worker for ``spec``: the cores shared among ``local:N``'s
    workers; None (each worker's default) for a remote cluster."""
    found = _LOCAL.fullmatch(spec.strip())
    if found is None:
        return None
    cores = os.cpu_count() or 1
    return max(1, cores // int(found[1])) if found[1] else 1
