"""The in-memory path of :mod:`unet_edge.paths.files`: one image read whole, segmented, and
every output asked for written (each atomically; all or none)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import io, processing
from ..config import OutputFormat
from ..errors import OutputError
from ..objects.outputs import OBJECT_OUTPUTS, object_writers

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
    image, calibration = source.pixels, source.calibration
    # Only a multi-page TIFF is a stack; (H, W, 3) from a PNG is one colour frame.
    stack = source.is_stack
    pred = seg.analyze(list(image) if stack else image)
    mask = pred.mask
    tile_plan = seg.plan_for((mask.shape[-2], mask.shape[-1]))
    noted = {"calibration_note": source.calibration_note} if source.calibration_note else {}
    prov = seg.result_provenance(tile_plan, pred.stats, source=plan.input.name, **noted)
    saved = processing.mask_to_image(mask, seg.info.classes)
    z = "Z" if stack else ""
    tiff: dict[str, Any] = {
        "calibration": calibration,
        "ome": plan.output_format is OutputFormat.OME_TIFF,
    }
    writers: dict[str, Callable[[Path], object]] = {
        "mask": lambda p: (
            io.write_tiff(p, saved, prov, axes=f"{z}YX", compression="zlib", **tiff)
            if p.suffix == ".tif"
            else io.write_png(p, saved, prov)
        ),
        "probabilities": lambda p: io.write_tiff(
            p, pred.probabilities, prov, axes=f"{z}CYX", **tiff
        ),
        "overlay": lambda p: io.write_png(
            p,
            processing.overlay(image[0] if stack else image, mask[0] if stack else mask),
            prov,
        ),
    }
    if plan.labelling is not None:
        kinds = [k for k in plan.outputs if k in OBJECT_OUTPUTS]
        made = object_writers(
            kinds, pred, image, seg.info.class_names, plan.labelling, calibration, prov
        )
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
