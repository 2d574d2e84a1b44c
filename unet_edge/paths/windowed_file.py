"""The window-by-window outputs of one planned file: in this process, or on a Dask cluster.

:func:`segment_plan` is what :mod:`unet_edge.paths.files` calls for an input
that goes the windowed way (``large=True``, or too large for memory): it opens
the TIFF once (:class:`unet_edge.io.TiffWindows`), turns the plan's object
outputs into :class:`unet_edge.paths.windowed.ObjectFiles`, and runs
:func:`unet_edge.paths.windowed.segment_windows` here or
:func:`unet_edge.paths.cluster.segment_windows_dask` on a cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import io, scale
from ..config import OutputFormat

if TYPE_CHECKING:
    from ..runtime import Segmenter
    from .files import FilePlan


def segment_plan(
    seg: Segmenter,
    plan: FilePlan,
    header: io.ImageHeader,
    max_pixels: int | None,
    *,
    dask_client: Any = None,
    dask_threads: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    make_folder: Callable[[FilePlan], None] | None = None,
) -> dict[str, Any]:
    """The outputs of a file plan (:class:`unet_edge.paths.files.FilePlan`): the mask, and
    the labels and object table when asked, window by window from one open of the input
    (which must still have ``header``), on ``dask_client``'s cluster if given (inference
    threads per worker: ``dask_threads``, None: the engine's default); returns the
    provenance. ``make_folder(plan)`` is called once the input is open, before any output."""
    from .windowed import ObjectFiles, segment_windows

    kw: dict[str, Any] = {"ome": plan.output_format is OutputFormat.OME_TIFF}
    kw["progress"] = progress
    kw["channel"] = plan.channel  # as preflight resolved it (None: the Segmenter's)
    read: dict[str, Any] = {"max_pixels": max_pixels, "expect": header, "channel": plan.channel}
    read["grey"] = seg.info.channels == 1  # RGB stored grey: checked window by window
    with io.TiffWindows(plan.input, **read) as source:  # a channel picked: read alone
        kw["calibration"] = scale.output_calibration(plan.pixel_size, source.calibration)
        kw["objects"] = ObjectFiles.for_plan(seg, plan, kw["calibration"])
        kw["rescale"] = scale.resolve(seg.info.pixel_size, plan.pixel_size, source.calibration)
        if make_folder is not None:
            make_folder(plan)
        if dask_client is None:
            return segment_windows(seg, source, plan.outputs["mask"], **kw)
        from .cluster import segment_windows_dask

        kw.update(client=dask_client, threads=dask_threads)
        return segment_windows_dask(seg, source, plan.outputs["mask"], **kw)
