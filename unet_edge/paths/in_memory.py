"""The in-memory path of :mod:`unet_edge.paths.files`: one image read whole, segmented, and
every output asked for written (each atomically; all or none)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import io, scale
from ..config import OutputFormat
from ..errors import OutputError
from ..io import axes as io_axes
from ..objects.outputs import OBJECT_OUTPUTS, object_writers
from .image_outputs import image_writers

if TYPE_CHECKING:
    from ..runtime import Segmenter
    from .files import FilePlan


def make_folder(plan: FilePlan) -> None:
    """Create the output folder of ``plan`` (and missing parents)."""
    folder = plan.outputs["mask"].parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create output folder {folder}: {e.strerror}") from None


def segment_in_memory(
    seg: Segmenter, plan: FilePlan, header: io.ImageHeader, max_pixels: int | None
) -> dict[str, Any]:
    """Write every output asked for of an image checked against ``header`` (read whole, in
    one open); returns the provenance written into them."""
    source = io.read_file(plan.input, max_pixels=max_pixels, expect=header)
    image, found = source.pixels, source.calibration
    # the file's axes, not its shape: T and Z kept, one channel picked (unet_edge.io.axes)
    arranged = io_axes.arrange(image, io_axes.layout(header, seg.info.channels, plan.channel))
    rescale = scale.resolve(seg.info.pixel_size, plan.pixel_size, found)
    calibration = scale.output_calibration(plan.pixel_size, found)
    pred = seg.analyze(arranged.input, pixel_size=rescale)
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
    writers = image_writers(arranged, pred, names, prov, calibration, ome)
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
