"""Segment image files: read, choose in memory or window by window, segment, write.

The library side of ``unet-edge run``. For each input ``NAME.ext`` the results
go into an output folder as ``NAME_mask.png`` (``.tif`` for TIFF inputs:
(H, W) or (Z, H, W)), and optionally ``NAME_probabilities.tif`` (float32,
(K, H, W) or (Z, K, H, W)) and ``NAME_overlay.png``. TIFF outputs are ImageJ
hyperstacks (axes ``YX``/``ZYX``, ``CYX``/``ZCYX``), or OME-TIFF named
``.ome.tif`` (every mask too) with ``output_format="ome-tiff"``, with the
input's pixel size; every output carries the provenance (model, provider,
tiling, the normalisation used) as JSON (:func:`unet_edge.io.read_provenance`).

Outputs are planned and checked before any compute: two inputs may not write
the same file, an input is never overwritten, and an existing file is kept
unless ``overwrite``. Every file is written to a temporary name and renamed,
and a file that fails leaves none of its outputs behind.

Before any pixel is decoded, :func:`preflight` reads the file's header
(:func:`unet_edge.io.open_image`: every page of a TIFF present, the pixel
data inside the file, at most ``max_pixels`` pixels per plane) and its calibration,
and estimates what the in-memory path needs (:func:`in_memory_bytes`), at the
model's pixel size when the image is resampled to it. A single-image TIFF
that would need more than ``memory_limit`` is segmented window by window
(:func:`unet_edge.paths.windowed.segment_windows`), with memory independent
of its size and the same mask; other images that would need more are refused
with the estimate. ``large=True`` forces the windowed path, ``large=False`` forbids
it. The windowed path writes the mask, labels and object table, of one channel
when one is picked. The output folder is created
when there is something to write, and removed again (if it was new and is
empty) when the file fails.

Data flows one way: the :class:`Preflight` carries the header it read, and
:func:`segment_checked` opens the file once more, for its pixels (and
calibration), refusing a file whose header is no longer that one. An input is
opened exactly twice: once for its header, once for its pixels.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import io, scale
from ..config import OutputFormat, look_up
from ..errors import InputError, OutputError, UnetEdgeError
from ..io import axes as io_axes
from ..objects.merge import check_local
from ..objects.outputs import OBJECT_OUTPUTS, Labelling, object_kinds
from . import in_memory
from .in_memory import in_memory_bytes

if TYPE_CHECKING:
    from ..runtime import Segmenter

__all__ = [
    "IN_MEMORY_LIMIT",
    "FilePlan",
    "FileResult",
    "Preflight",
    "in_memory_bytes",
    "plan_files",
    "preflight",
    "segment_checked",
    "segment_file",
]

#: Bytes one file may need in memory (estimated) before a TIFF is segmented window by window.
IN_MEMORY_LIMIT = 2 << 30
#: The object outputs the window-by-window path writes (labels TIFF, object table).
WINDOWED_OBJECTS = {"labels", "objects"}

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class FilePlan:
    """Where the results of one input go: ``outputs`` maps ``"mask"``, ``"probabilities"``,
    ``"overlay"`` and the object outputs (``"labels"``, ``"objects"``, ``"rois"``,
    ``"geojson"``; those asked for) to paths; ``output_format`` is how TIFFs are written;
    ``labelling`` how objects are made (None: no object output)."""

    input: Path
    outputs: Mapping[str, Path]
    output_format: OutputFormat = OutputFormat.TIFF
    labelling: Labelling | None = None
    pixel_size: Any = None  # stated by the caller (unet_edge.scale.parse); None: the file's
    channel: int | None = None  # the one a 1-channel model segments (unet_edge.io.axes.layout)


@dataclass(frozen=True)
class FileResult:
    """What :func:`segment_file` wrote.

    ``outputs`` maps each kind written to its path; ``provenance`` is the
    dictionary written into the TIFF outputs (model, provider, tile plan,
    ``"normalization"``: the scaling used, one dict per frame); ``windowed``
    says whether the image was segmented window by window.
    """

    input: Path
    outputs: Mapping[str, Path]
    provenance: Mapping[str, Any]
    windowed: bool


def output_paths(
    path: PathLike,
    folder: PathLike,
    *,
    probabilities: bool = False,
    overlay: bool = False,
    output_format: OutputFormat | str = OutputFormat.TIFF,
    objects: Sequence[str] = (),
) -> dict[str, Path]:
    """The result files of input ``path`` in ``folder`` (mask always; the others if asked;
    ``objects``: the object outputs, keys of :data:`unet_edge.objects.outputs.OBJECT_OUTPUTS`)."""
    path, folder = Path(path), Path(folder)
    ome = look_up(OutputFormat, output_format, "output format") is OutputFormat.OME_TIFF
    suffix = ".ome.tif" if ome else ".tif"
    tiff = ome or path.suffix.lower() in io.TIFF_SUFFIXES
    outs = {"mask": folder / f"{path.stem}_mask{suffix if tiff else '.png'}"}
    if probabilities:
        outs["probabilities"] = folder / f"{path.stem}_probabilities{suffix}"
    if overlay:
        outs["overlay"] = folder / f"{path.stem}_overlay.png"
    outs.update({k: folder / f"{path.stem}{OBJECT_OUTPUTS[k]}" for k in objects})
    return outs


def plan_files(
    inputs: Iterable[PathLike],
    output_dir: PathLike,
    *,
    probabilities: bool = False,
    overlay: bool = False,
    overwrite: bool = False,
    large: bool | None = None,
    output_format: OutputFormat | str = OutputFormat.TIFF,
    pixel_size: Any = None,
    channel: int | None = None,
    **objects: Any,
) -> list[FilePlan]:
    """Expand ``inputs`` (files, folders, glob patterns) and check all their outputs at once.

    ``objects``: the object outputs and how objects are made, as for :func:`segment_file`
    (``labels``, ``measure``, ``rois``, ``geojson``, ``min_size``, ``split``).

    Nothing is read but file names and nothing is written. Raises
    :class:`~unet_edge.InputError` when two inputs would write the same file
    or ``large=True`` meets a non-TIFF input or asks for more than the mask,
    :class:`~unet_edge.OutputExistsError` for an existing output (without
    ``overwrite``) or an output that is an input, and
    :class:`~unet_edge.OutputError` when ``output_dir`` is a file.
    """
    what = {"probabilities": probabilities, "overlay": overlay, "output_format": output_format}
    what["pixel_size"] = pixel_size
    what["channel"] = channel
    return _plans(
        io.collect_inputs(inputs),
        io.as_path(output_dir, "output_dir"),
        overwrite,
        large,
        {**what, **_object_request(objects)},
    )


def _object_request(choices: Mapping[str, Any]) -> dict[str, Any]:
    """``what`` entries for the object outputs: ``objects`` (the kinds asked for) and
    ``labelling`` (None when none is)."""
    keys = ("labels", "measure", "rois", "geojson")
    unknown = set(choices) - {*keys, "min_size", "split"}
    if unknown:
        raise TypeError(f"unexpected keyword argument {sorted(unknown)[0]!r}")
    kinds = object_kinds(**{k: bool(choices.get(k)) for k in keys})
    size, split = choices.get("min_size"), choices.get("split")  # None: the model's
    return {"objects": kinds, "labelling": Labelling.make(size, split) if kinds else None}


def _plans(
    paths: Sequence[Path],
    folder: Path,
    overwrite: bool,
    large: bool | None,
    what: Mapping[str, Any],
) -> list[FilePlan]:
    """Plans for ``paths``; ``what`` holds :func:`output_paths`' keyword arguments and the
    ``labelling``."""
    _check_folder(folder)
    what = dict(what)
    labelling, channel = what.pop("labelling", None), what.pop("channel", None)
    pixel_size = scale.parse(what.pop("pixel_size", None))  # refused before any compute
    if large:
        more = [k for k in ("probabilities", "overlay") if what[k]]
        more += sorted(set(what.get("objects", ())) - WINDOWED_OBJECTS)
        _check_windowed_request(paths, more, labelling)
    fmt = look_up(OutputFormat, what["output_format"], "output format")
    plans = [
        FilePlan(p, output_paths(p, folder, **what), fmt, labelling, pixel_size, channel)
        for p in paths
    ]
    _check_outputs(plans, folder, overwrite)
    return plans


def _check_outputs(plans: Sequence[FilePlan], folder: Path, overwrite: bool) -> None:
    """Refuse outputs of ``plans`` (all in ``folder``) that two inputs share, that exist
    (without ``overwrite``) or that are inputs."""
    paths = [plan.input for plan in plans]
    seen: dict[Path, Path] = {}
    for plan in plans:
        for out in plan.outputs.values():
            if out in seen:
                raise InputError(
                    f"inputs {seen[out]} and {plan.input} would both write {out}; rename one "
                    "or segment them into different folders",
                    option="output",
                )
            seen[out] = plan.input
            if folder.is_dir():
                io.check_output(out, overwrite, paths)


def _check_folder(folder: Path) -> None:
    """Refuse an output folder that is a file."""
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"output folder {folder} is a file", option="output")


def _check_windowed_request(
    paths: Sequence[Path], more: Sequence[str], labelling: Labelling | None = None
) -> None:
    """Refuse ``large=True`` for non-TIFF inputs, outputs other than the mask, labels and
    object table (``more``), or an unknown split (:func:`unet_edge.objects.merge.check_local`)."""
    if labelling is not None and labelling.split is not None:
        check_local(labelling.split.value)
    others = [p for p in paths if p.suffix.lower() not in io.TIFF_SUFFIXES]
    if others or more:
        why = f"{others[0]} is not a TIFF" if others else f"{', '.join(more)} were asked for"
        raise InputError(
            "window-by-window (large-image) processing takes TIFF inputs and writes the mask, "
            f"the labels and the object table only, but {why}",
            option="large",
        )


def segment_file(
    seg: Segmenter,
    path: PathLike,
    output_dir: PathLike,
    *,
    probabilities: bool = False,
    overlay: bool = False,
    overwrite: bool = False,
    large: bool | None = None,
    memory_limit: int = IN_MEMORY_LIMIT,
    output_format: OutputFormat | str = OutputFormat.TIFF,
    max_pixels: int | None = None,
    labels: bool = False,
    measure: bool = False,
    rois: bool = False,
    geojson: bool = False,
    min_size: int | str | None = None,
    split: str | None = None,
    dask_client: Any = None,
    pixel_size: Any = None,
    channel: int | None = None,
) -> FileResult:
    """Segment one image file into ``output_dir`` (created if missing) and say what was written.

    Args:
        seg: an open Segmenter (model, provider, tile, normalisation range).
        path: an image file (PNG, JPEG, BMP, TIFF; a multi-page TIFF is a stack).
        output_dir: the results' folder (:func:`output_paths`), created when needed.
        probabilities, overlay: also write those (in-memory path only).
        overwrite: replace existing results (never an input).
        large: True segments window by window, False in memory, None decides
            by ``memory_limit`` (single-image TIFFs only).
        memory_limit: estimated bytes above which (with ``large=None``) a TIFF
            goes the windowed way and any other image is refused.
        output_format: ``"tiff"``: TIFF outputs are ImageJ hyperstacks;
            ``"ome-tiff"``: OME-TIFF (``NAME_mask.ome.tif`` for every input).
        max_pixels: most pixels per image plane (None: :data:`unet_edge.io.MAX_PIXELS`,
            0: no limit), checked from the header before decoding.
        labels, measure, rois, geojson: the object outputs (in memory only; see
            :mod:`unet_edge.objects`): ``NAME_labels.tif``, ``NAME_objects.csv``,
            ``NAME_rois.zip``, ``NAME_objects.geojson``.
        min_size, split: the smallest object kept (pixels, ``"20px"``, ``"2um2"``) and
            ``"watershed"``/``"none"``; None: the model's stated rule, as ``run`` follows.
        dask_client: a ``distributed.Client`` whose cluster computes the windows (implies large).
        pixel_size: the image's (µm, a Calibration; None: the file's; "native": as it is).
        channel: the channel (or colour) a 1-channel model segments (None: ``seg.channel``).

    Outputs and the header are checked before anything is computed; on failure nothing of
    this file is left (not even a new folder). The file is opened twice: header, pixels.
    """
    folder = io.as_path(output_dir, "output_dir")
    what = {"probabilities": probabilities, "overlay": overlay, "output_format": output_format}
    asked = {"labels": labels, "measure": measure, "rois": rois, "geojson": geojson}
    objects = _object_request({**asked, "min_size": min_size, "split": split})
    what.update(objects, pixel_size=pixel_size, channel=channel)
    large = True if dask_client is not None else large  # a cluster computes windows
    plan = _plans([io.as_path(path, "path")], folder, overwrite, large, what)[0]
    with errors_name(plan.input):
        check = preflight(seg, plan, large=large, memory_limit=memory_limit, max_pixels=max_pixels)
    return _segment(seg, check, max_pixels, overwrite, dask_client=dask_client)


def segment_checked(
    seg: Segmenter,
    check: Preflight,
    *,
    overwrite: bool = False,
    max_pixels: int | None = None,
    **windowed: Any,
) -> FileResult:
    """Segment an input that passed :func:`preflight` (as a batch does, after checking
    every input): its outputs are checked once more, then its pixels are read in one
    open, which must still find ``check.header`` (else :class:`~unet_edge.ImageReadError`).

    ``overwrite``, ``max_pixels`` as for :func:`segment_file`; ``windowed``: ``dask_client``,
    ``progress`` of the windowed path (:func:`unet_edge.paths.windowed_file.segment_plan`).
    """
    return _segment(seg, check, max_pixels, overwrite, **windowed)


def _segment(
    seg: Segmenter, check: Preflight, max_pixels: int | None, overwrite: bool, **windowed: Any
) -> FileResult:
    """Check the outputs of a checked input once more (the preflight may have renamed one:
    a stack's overlay is a TIFF), read and segment it, write its results; on failure none
    of them stays."""
    plan = check.plan
    _check_folder(plan.outputs["mask"].parent)
    _check_outputs([plan], plan.outputs["mask"].parent, overwrite)
    with errors_name(plan.input), _folder_removed_on_failure(plan.outputs["mask"].parent):
        if check.windowed:
            return _segment_windowed(seg, check, max_pixels, **windowed)
        prov = in_memory.segment_in_memory(seg, check.plan, check.header, max_pixels)
        return FileResult(check.plan.input, dict(check.plan.outputs), prov, False)


@contextlib.contextmanager
def errors_name(path: Path) -> Iterator[None]:
    """Every error about one file names it (in a batch, each line must say which)."""
    try:
        yield
    except UnetEdgeError as e:
        if e.args and str(path) not in str(e):
            e.args = (f"{path}: {e.args[0]}", *e.args[1:])
        raise


@dataclass(frozen=True)
class Preflight:
    """One input checked from its header: its ``plan``, its ``header`` (handed on, so the
    pixels are read against it), the bytes the in-memory path would need (``in_memory``)
    and whether it will be segmented window by window."""

    plan: FilePlan
    header: io.ImageHeader
    in_memory: int
    windowed: bool


def preflight(
    seg: Segmenter,
    plan: FilePlan,
    *,
    large: bool | None = None,
    memory_limit: int = IN_MEMORY_LIMIT,
    max_pixels: int | None = None,
) -> Preflight:
    """Read ``plan.input``'s header (no pixels) and decide how it will be segmented.

    The memory needed is estimated at the size the kernel will run at: on the
    model's grid when the image is resampled to the model's pixel size (the stated
    ``plan.pixel_size``, or the header's calibration: :func:`unet_edge.scale.resolve`).

    Raises :class:`~unet_edge.ImageReadError` for a damaged, truncated or too
    large file (``max_pixels``), :class:`~unet_edge.errors.ScaleError` for a
    calibration too far from the model's pixel size, and :class:`~unet_edge.InputError`
    for an image that needs more than ``memory_limit`` in memory but cannot be segmented
    window by window (not a single-image TIFF, or more than the mask asked for).
    """
    with io.open_image(plan.input, max_pixels=max_pixels) as image:  # no pixel decoded
        header, calibration = image.header, image.calibration()
    channel = seg.channel if plan.channel is None else plan.channel  # the Segmenter's default
    found = io_axes.layout(header, seg.info.channels, channel)  # before any compute
    # a stack's overlay is a TIFF; the channel picked is the plan's from here on
    plan = replace(plan, outputs=io_axes.outputs_for(plan.outputs, found), channel=found.channel)
    # the size the kernel will run at: the model's grid when the image is resampled to it
    rescale = scale.resolve(seg.info.pixel_size, plan.pixel_size, calibration)
    picked = found.channel is not None
    need = in_memory_bytes(header, seg.info.classes, rescale, picked=picked, grey=found.grey_check)
    tiff = plan.input.suffix.lower() in io.TIFF_SUFFIXES
    windowed = bool(large) or (large is None and need > memory_limit)
    if windowed and large is None:
        why = ""
        if not tiff:
            why = "only TIFFs can be segmented window by window; save it as a TIFF"
        elif found.is_stack:  # T or Z; channels are checked below (one may be picked)
            why = "a stack is not segmented window by window; split it into one TIFF per slice"
        elif set(plan.outputs) - {"mask", *WINDOWED_OBJECTS}:
            why = "the window-by-window path writes the mask, labels and object table only"
        if why:
            raise InputError(
                f"{plan.input} needs about {_gib(need)} to segment in memory"
                f"{_resampled(rescale)}, more than the limit of {_gib(memory_limit)}, and "
                f"{why}, or raise the memory limit",
                option="memory_limit",
            )
    if windowed:
        io_axes.check_windowed(found)  # T, Z or C axes, by name
        # a stack, or windows that cannot be read; one channel picked is read alone
        io.TiffWindows.check_header(header, found.channel)
    return Preflight(plan, header, need, windowed)


@contextlib.contextmanager
def _folder_removed_on_failure(folder: Path) -> Iterator[None]:
    """Remove the folders (``folder`` and missing parents) created inside, if the block fails
    and they are still empty."""
    new = [d for d in (folder, *folder.parents) if not d.exists()]
    try:
        yield
    except BaseException:
        for d in new:
            with contextlib.suppress(OSError):
                d.rmdir()
        raise


def _resampled(rescale: scale.Rescale | None) -> str:
    """`` (resampled 4x to the model's pixel size)`` for a message; "" when it is not."""
    if rescale is None:
        return ""
    fy, fx = rescale.factor
    times = f"{fy:.3g}x" if fy == fx else f"{fy:.3g} x {fx:.3g}x"
    return f" (resampled {times} to the model's pixel size)"


def _gib(n: int) -> str:
    """A size for people: 1.5 GiB, 300 MiB, 12 KiB."""
    for unit, shift in (("GiB", 30), ("MiB", 20)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.{1 if shift == 30 else 0}f} {unit}"
    return f"{-(-n // 1024)} KiB"


def _segment_windowed(
    seg: Segmenter, check: Preflight, max_pixels: int | None, **windowed: Any
) -> FileResult:
    """The mask (and labels, object table) of a checked TIFF, window by window, from one
    open of it (:func:`unet_edge.paths.windowed_file.segment_plan`)."""
    from .windowed_file import segment_plan

    plan = check.plan
    prov = segment_plan(
        seg, plan, check.header, max_pixels, make_folder=in_memory.make_folder, **windowed
    )
    return FileResult(plan.input, dict(plan.outputs), prov, True)
