"""The in-memory path of :mod:`unet_edge.paths.files`: one image read whole, segmented, and
every output asked for written (each atomically; all or none)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import io, scale
from ..config import OutputFormat
from ..errors import OutputError
from ..io import axes as io_axes
from ..objects.outputs import OBJECT_OUTPUTS, object_writers
from .image_outputs import image_writers

if TYPE_CHECKING:
    from ..runtime import Segmenter
    from .files import FilePlan


#: The suffixes of JPEG files (their grey stored as RGB is checked within a few levels).
_JPEG = (".jpg", ".jpeg")


def make_folder(plan: FilePlan) -> None:
    """Create the output folder of ``plan`` (and missing parents)."""
    folder = plan.outputs["mask"].parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create output folder {folder}: {e.strerror}") from None


def in_memory_bytes(
    header: io.ImageHeader,
    classes: int,
    rescale: scale.Rescale | None = None,
    *,
    picked: bool = False,
    grey: bool = False,
) -> int:
    """Bytes segmenting an image in memory needs, estimated from its header.

    Per pixel of every frame (T x Z; channels, C or S, are a frame's): the raw image
    (channels x itemsize), its float32 copy (4 x channels; the kernel reads mirrored
    windows tile by tile, so there is no padded copy of the whole image), the float32
    probabilities and their stitched copy (8 x classes), and the mask and the saved
    mask (2).

    With ``rescale`` (the image resampled to the model's pixel size,
    :func:`unet_edge.scale.resolve`) the kernel runs on the model's grid, factor²
    as many pixels: there, the resampled image (4 x channels) and the probabilities
    and their stitched copy (8 x classes); on the input's grid, the raw image, its
    float32 copy, the probabilities resampled back (4 x classes) and the masks.

    With one channel ``picked`` of several (C or S), the file is read whole, the channel
    is copied out and the others are let go before the compute
    (:func:`unet_edge.paths.in_memory.segment_in_memory`): the larger of the read (every
    channel and the copy, (channels + 1) x itemsize) and the compute, which counts one
    channel.

    RGB stored ``grey`` (a 1-channel model, no colour picked: ``Layout.grey_check``) is
    the same: its colours are checked equal and the grey copied out before the compute,
    which counts one channel; a JPEG's check may hold wide copies of two colour planes and
    their difference (3 x 8) while the file is held.
    """
    sizes = list(zip(header.shape, header.axes, strict=True))
    frames = math.prod(n for n, a in sizes if a not in "YXSC")
    chans = math.prod(n for n, a in sizes if a in "SC")
    seen, item = 1 if picked or grey else chans, header.dtype.itemsize  # computed on
    pixels = header.plane_pixels * frames
    reading = pixels * (chans + 1) * item if seen < chans else 0
    if grey and header.path.suffix.lower() in _JPEG:  # JPEG's colours may differ a little
        reading = max(reading, pixels * (chans * item + 3 * 8))
    if rescale is None:
        return max(reading, pixels * (seen * (item + 4) + 8 * classes + 2))
    h, w = (n for n, a in sizes if a in "YX")
    model = math.prod(rescale.grid((h, w)).model_shape) * frames
    own = pixels * (seen * (item + 4) + 4 * classes + 2)
    return max(reading, own + model * (4 * seen + 8 * classes))


def segment_in_memory(
    seg: Segmenter, plan: FilePlan, header: io.ImageHeader, max_pixels: int | None
) -> dict[str, Any]:
    """Write every output asked for of an image checked against ``header`` (read whole, in
    one open); returns the provenance written into them."""
    source = io.read_file(plan.input, max_pixels=max_pixels, expect=header)
    found = source.calibration
    # the file's axes, not its shape: T and Z kept, one channel picked (unet_edge.io.axes)
    layout = io_axes.layout(header, seg.info.channels, plan.channel)
    arranged = io_axes.arrange(source.pixels, layout)
    one = (layout.channel is not None and layout.colour) or layout.grey_check
    if one and np.may_share_memory(arranged.frames, source.pixels):
        # the channel picked (or the grey of RGB stored grey) is copied out and the others
        # let go before the compute, as in_memory_bytes counts
        arranged = replace(arranged, frames=arranged.frames.copy())
        source = replace(source, pixels=arranged.frames)
    rescale = scale.resolve(seg.info.pixel_size, plan.pixel_size, found)
    calibration = scale.output_calibration(plan.pixel_size, found)
    pred = seg.analyze(arranged, pixel_size=rescale)  # its channel is picked: not again
    mask = pred.mask
    shape = (mask.shape[-2], mask.shape[-1])
    tile_plan = seg.plan_for(rescale.grid(shape).model_shape if rescale else shape)
    noted: dict[str, Any] = {"rescale": pred.rescale} if pred.rescale else {}
    noted.update({"calibration_note": source.calibration_note} if source.calibration_note else {})
    noted["quality"] = pred.quality_record()  # unet_edge.domain: like the training images?
    prov = seg.result_provenance(tile_plan, pred.stats, source=plan.input.name, **noted)
    prov.update(arranged.provenance())  # the axes, and a note (grey stored as RGB)
    ome = plan.output_format is OutputFormat.OME_TIFF
    names = seg.info.class_names
    # a time series' interval is written with no pixel size too
    writers = image_writers(arranged, pred, names, prov, calibration, ome, source.interval)
    if plan.labelling is not None:
        kinds = [k for k in plan.outputs if k in OBJECT_OUTPUTS]
        labelling = plan.labelling.for_model(seg.info.labelling)  # the model's rule, if any
        made = object_writers(kinds, pred, arranged.frames, names, labelling, calibration, prov)
        writers.update(made)
    make_folder(plan)
    write_all([(path, writers[kind]) for kind, path in plan.outputs.items()])
    return prov


def write_all(jobs: Sequence[tuple[Path, Callable[[Path], object]]]) -> None:
    """Write every output (each atomically); if one fails, remove those already written."""
    done: list[Path] = []
    try:
        for path, write in jobs:
            write(path)
            done.append(path)
    except BaseException:
        for path in done:
            with contextlib.suppress(OSError):
                path.unlink()
        raise
