"""``unet-edge run`` (segment image files) and ``unet-edge info`` (describe a model)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .. import files
from . import options as o

if TYPE_CHECKING:
    from ..config import Normalization
    from ..runtime import Segmenter


@click.command(short_help="Segment images (files, folders, globs) into mask files.")
@click.argument("inputs", nargs=-1, required=True)
@o.output_opt(
    "Folder for NAME_mask.png/.tif and the other results",
    folder=True,
    default=Path("unet-edge-output"),
)
@o.segmenter_options
@click.option(
    "--probabilities",
    is_flag=True,
    help="Also write float32 class probabilities as NAME_probabilities.tif (classes, H, W).",
)
@click.option(
    "--overlay", is_flag=True, help="Also write NAME_overlay.png: the image with the mask."
)
@click.option(
    "--large",
    is_flag=True,
    help="Read TIFFs window by window and write the mask TIFF band by band: memory does not "
    "grow with the image's height [default: only for TIFFs too large for memory].",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["tiff", "ome-tiff"]),
    default="tiff",
    show_default=True,
    help="TIFF outputs as ImageJ hyperstacks (tiff) or OME-TIFF (ome-tiff: NAME_mask.ome.tif "
    "for every input); both carry the input's pixel size.",
)
@o.memory_budget_opt
@o.memory_limit_opt
@o.input_range_opt
@o.bit_depth_opt
@o.tta_opt
@o.normalization_opt
@o.overwrite_opt
@o.verbosity_options
def run(
    inputs: Sequence[str],
    output: Path,
    segmenter: o.SegmenterArgs,
    probabilities: bool,
    overlay: bool,
    large: bool,
    output_format: str,
    memory_budget: int,
    memory_limit: int,
    input_range: tuple[float, float] | None,
    bit_depth: int | None,
    tta: bool,
    normalization: Normalization | None,
    overwrite: bool,
    out: o.Reporter,
) -> None:
    """Segment images: files, folders or glob patterns.

    Writes NAME_mask.png (0/255 for two classes, class indices otherwise; .tif
    for TIFF inputs: an ImageJ hyperstack with the input's pixel size) into the
    output folder.
    Every output is checked before any compute; existing files are kept
    unless --overwrite. A TIFF too large for memory is segmented window by
    window (as with --large).

    \b
    Example (12-bit camera data in 16-bit TIFFs):
      unet-edge run scans/*.tif -o masks/ --overlay --bit-depth 12
    Another U-Net's ONNX file, or a bioimage.io package:
      unet-edge run img.png -m their.onnx --normalization percentile:1,99.8
      unet-edge run img.png -m model.zip
    """
    from ..runtime import Segmenter

    wanted: dict[str, Any] = {"probabilities": probabilities, "overlay": overlay}
    wanted["output_format"] = output_format
    wanted.update(overwrite=overwrite, large=True if large else None)  # None: by size
    plans = files.plan_files(inputs, output, **wanted)
    wanted["memory_limit"] = memory_limit
    with Segmenter(
        segmenter.model,
        **segmenter.kwargs(),
        memory_budget=memory_budget,
        input_range=input_range,
        bit_depth=bit_depth,
        tta=tta,
        normalization=normalization,
    ) as seg:
        for note in seg.notes:
            out.info(note)
        out.detail(f"{seg!r}: {seg.geometry.describe()}")
        with out.progress(plans, "Segmenting") as bar:
            written = sum(_segment(seg, plan, output, wanted, out) for plan in bar)
    out.info(f"wrote {written} file(s) to {output}")


def _segment(
    seg: Segmenter, plan: files.FilePlan, output: Path, wanted: dict[str, Any], out: o.Reporter
) -> int:
    """Segment one planned input; returns the number of files written."""
    t0 = time.perf_counter()
    result = files.segment_file(seg, plan.input, output, **wanted)
    how = "window by window" if result.windowed else "in memory"
    out.detail(
        f"{plan.input} -> {', '.join(map(str, result.outputs.values()))} "
        f"({how}, {time.perf_counter() - t0:.2f} s, {result.provenance['tile_plan']})"
    )
    return len(result.outputs)


@click.command(
    short_help="Describe a model (metadata, halo, legal tiles) and the working providers."
)
@o.model_opt
@o.normalization_opt
@click.option("--json", "as_json", is_flag=True, help="Print the model metadata as JSON.")
def info(model: Path, normalization: Normalization | None, as_json: bool) -> None:
    """Describe a model (default: the shipped one) and the execution providers here.

    An ONNX file without unet-edge metadata is probed: legal input sizes, halo,
    alignment, channels and output kind are measured by running it.

    \b
    Example:
      unet-edge info -m model.onnx --json
    """
    from .. import providers, sources
    from . import printable

    src = sources.open_model(model, normalization, probe_only=True)
    mi, g = src.info, src.geometry
    if as_json:
        d = mi.to_dict()
        if src.probe is not None:
            d["geometry"] = src.probe.to_dict()["geometry"]
            d["probed"] = src.probe.to_dict()
        click.echo(json.dumps(d, indent=2, sort_keys=True))
        return
    a = mi.architecture
    network = (
        src.describe()
        if src.probe is not None
        else f"U-Net depth {a.depth}, base width {a.base_width}, padding "
        f"{a.padding.value}, batch norm {a.batch_norm}"
    )
    norm = mi.normalization.to_dict() if normalization or src.probe is None else "not given"
    lines = [
        f"model      {model} ({model.stat().st_size / 1e6:.2f} MB, {src.origin})",
        f"name       {mi.name}  precision {mi.precision.value}",
        f"network    {network}",
        f"input      {mi.channels} channel(s), normalisation {norm}",
        f"classes    {', '.join(mi.class_names)}",
        f"geometry   halo {g.halo} px, alignment {g.alignment} px, border {mi.border.value}",
        f"tiles      legal inputs {g.legal_text}: "
        + ", ".join(f"{t}->{g.output_size(t)}" for t in g.legal_inputs(g.min_input + 8 * g.step))
        + ", ...",
    ]
    if mi.metrics:
        lines.append(f"metrics    {json.dumps(mi.metrics, sort_keys=True)}")
    if mi.provenance:
        lines.append(f"provenance {json.dumps(mi.provenance, sort_keys=True)}")
    lines.append("providers")
    for prov, installed, reason in providers.report():
        state = "works" if installed and reason is None else "not installed"
        if installed and reason is not None:
            state = f"installed, not usable: {reason}"
        lines.append(f"  {prov.value:<9} {state}")
    click.echo("\n".join(map(printable, lines)))  # names and provenance come from the file
