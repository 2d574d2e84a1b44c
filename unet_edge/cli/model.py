"""``unet-edge export`` (checkpoint -> ONNX) and ``unet-edge quantize`` (fp32 -> int8)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from . import options as o

if TYPE_CHECKING:
    from ..config import Normalization
    from ..objects.labels import MinSize


def _finite(value: float | None, param: click.Parameter) -> float | None:
    """click's FloatRange lets NaN through (every comparison with it is False)."""
    if value is not None and value != value:
        raise click.BadParameter("nan is not a number between 0 and 1", param=param)
    return value


@click.command(short_help="Export a training checkpoint to one self-describing ONNX file.")
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=Path))
@o.output_opt("ONNX file to write [default: CHECKPOINT with suffix .onnx]")
@click.option("--opset", type=click.IntRange(min=17), default=17, show_default=True)
@click.option(
    "--fp16",
    is_flag=True,
    help="Write a half-precision graph for CUDA/TensorRT "
    "(float32 in and out; slow on the CPU provider).",
)
@click.option(
    "--domain-data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The training images (a folder, or its image/ sub-folder is used): their statistics "
    "go into the model, which then warns on images unlike them [default: the training images "
    "the checkpoint records, when they are still there].",
)
@click.option(
    "--no-domain",
    is_flag=True,
    help="Write the model without statistics of its training images (no domain guard).",
)
@click.option(
    "--split",
    type=click.Choice(["watershed", "none"], case_sensitive=False),
    default=None,
    help="State how the model's objects are best made: split touching ones (watershed) or "
    "not; `run --labels` and label() then follow it unless told [default: not stated].",
)
@click.option(
    "--min-size",
    type=o.MinSizeType(),
    default=None,
    help="State the smallest object the model's labels keep (e.g. 10px) [default: not stated].",
)
@o.overwrite_opt
@o.verbosity_options
def export(
    checkpoint: Path,
    output: Path | None,
    opset: int,
    fp16: bool,
    domain_data: Path | None,
    no_domain: bool,
    split: str | None,
    min_size: MinSize | None,
    overwrite: bool,
    out: o.Reporter,
) -> None:
    """Export a training checkpoint to one self-describing ONNX file.

    The graph is run in ONNX Runtime and compared with PyTorch before it is
    written; it is refused if they disagree. The model then records statistics
    of the training images the checkpoint names (or of --domain-data), so that
    it warns on images unlike them; the summary says which, or why none.

    \b
    Example:
      unet-edge export ckpt.pt -o model.onnx
      unet-edge export ckpt.pt --split watershed --min-size 10px   # nuclei-like objects
    """
    from .. import io

    if no_domain and domain_data is not None:
        raise click.UsageError("--domain-data and --no-domain exclude each other; give one")
    output = output or checkpoint.with_suffix(".onnx")
    io.check_output(output, overwrite)  # before torch is imported
    from ..training.domain_data import export_with_domain

    report, found = export_with_domain(
        checkpoint,
        output,
        domain_data=domain_data,
        use_recorded=not no_domain,
        opset=opset,
        overwrite=overwrite,
        fp16=fp16,
    )
    rule = _labelling_rule(split, min_size)
    if rule:  # validated by the metadata before the file is replaced
        from ..training.export import stamp_labelling

        stamp_labelling(output, rule)
        report.file_bytes = output.stat().st_size
    out.info(report.summary())
    _say_rule(output, out)  # the export options over what training stated
    if found.images or not no_domain:  # what the domain guard of the model will know
        hint = "" if found.images else "; add them with --domain-data DIR"
        out.info(found.note() + hint)
    for p in report.parity:
        out.detail(
            f"  parity {tuple(p['shape'])}: max abs {p['max_abs_error']:.2e}, "
            f"relative {p['rel_error']:.2e}"
        )


def _say_rule(path: Path, out: o.Reporter) -> None:
    """Say the ``output.labelling`` the exported model at ``path`` states, if any."""
    from ..metadata import read
    from .models import rule_text

    stated = read(path).labelling
    if stated:
        out.info(f"labelling rule: {rule_text(stated)}")


def _labelling_rule(split: str | None, min_size: MinSize | None) -> dict[str, str]:
    """``output.labelling`` from the export options ({}: nothing stated)."""
    rule = {"split": split.lower()} if split else {}
    if min_size is not None:
        rule["min_size"] = str(min_size)
    return rule


@click.command(short_help="Write an int8 copy of a model, kept only if its masks agree with fp32.")
@o.model_opt
@click.option(
    "--calibrate",
    "-c",
    "calibrate",
    multiple=True,
    required=True,
    help="Calibration images: files, folders or globs (repeatable).",
)
@o.output_opt("ONNX file to write [default: MODEL with suffix .int8.onnx]")
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1, min_open=True),
    default=None,
    callback=lambda ctx, param, v: _finite(v, param),
    help="Share of pixels whose class must match fp32 [default: 0.995].",
)
@o.choice_opt(
    "--provider",
    "-p",
    choices=["cpu", "openvino"],
    default="cpu",
    help="Runtime the int8 file is checked on and meant for: onnxruntime (cpu) or openvino, "
    "whose int8 kernels can agree with fp32 where onnxruntime's do not.",
)
@click.option(
    "--weight-bits",
    type=click.Choice(["7", "8"]),
    default=None,
    help="Bits of the int8 weights [default: 7 for cpu, 8 for openvino]. onnxruntime's int8 "
    "kernels saturate with 8-bit weights on x86 CPUs without VNNI; 7 bits cannot saturate.",
)
@o.tile_opt
@o.overwrite_opt
@o.verbosity_options
def quantize(
    model: Path,
    calibrate: Sequence[str],
    output: Path | None,
    threshold: float | None,
    provider: str,
    weight_bits: str | None,
    tile: int | tuple[int, int] | None,
    overwrite: bool,
    out: o.Reporter,
) -> None:
    """Write a static int8 (QDQ, uint8 activations, int8 weights) copy of an fp32 model.

    Calibrated on real images; written only if its masks agree with the fp32
    model's on those images (default: at least 99.5% of pixels).

    \b
    Example:
      unet-edge quantize -m model.onnx -c calibration/ -o model.int8.onnx
      unet-edge quantize -c calibration/ -p openvino   # then: run -m ... -p openvino
    """
    from .. import io, precision

    output = output or model.with_name(model.name.removesuffix(".onnx") + ".int8.onnx")
    io.check_output(output, overwrite, [model])
    report = precision.quantize(
        model,
        io.collect_inputs(calibrate),
        output,
        overwrite=overwrite,
        tile=tile,
        threshold=precision.AGREEMENT_THRESHOLD if threshold is None else threshold,
        provider=provider,
        weight_bits=None if weight_bits is None else int(weight_bits),
    )
    out.info(report.summary())


@click.command(short_help="Write a bioimage.io model package (.zip) of a model or checkpoint.")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@o.output_opt("Package to write [default: MODEL with suffix .zip]")
@o.normalization_opt
@click.option("--name", default=None, help="Package name [default: unet-edge MODEL-NAME].")
@click.option(
    "--description",
    default=None,
    help="One-paragraph description [default: classes and training data from the model].",
)
@click.option(
    "--author",
    "authors",
    multiple=True,
    help="NAME or NAME:AFFILIATION (repeatable) [default: unknown, or the shipped model's].",
)
@click.option(
    "--training-data",
    default=None,
    help="What the model learnt from, in words [default: as recorded by unet-edge train; "
    "ISBI 2012 only for the shipped model].",
)
@click.option("--tag", "tags", multiple=True, help="Extra bioimage.io tag (repeatable).")
@o.overwrite_opt
@o.verbosity_options
def package(
    model: Path,
    output: Path | None,
    normalization: Normalization | None,
    name: str | None,
    description: str | None,
    authors: Sequence[str],
    training_data: str | None,
    tags: Sequence[str],
    overwrite: bool,
    out: o.Reporter,
) -> None:
    """Write a bioimage.io model package (spec 0.5) for deepImageJ, ilastik, bioimageio.core.

    MODEL is an ONNX file written by `unet-edge export`, a training checkpoint
    (.pt; the package then also holds TorchScript weights, which ilastik
    needs), or any ONNX U-Net with --normalization (probed). Needs the
    [bioimageio] extra; check the result with `bioimageio test NAME.zip`.

    Name, description, authors, training data and tags default to what the
    model's metadata records (class names, training data, recipe); nothing is
    claimed about data it does not record.

    \b
    Example:
      unet-edge package model.onnx -o model.zip --author "Ada Lovelace:UCL" \\
        --training-data "40 confocal nuclei images (Hoechst), 0.2 um/px" --tag fluorescence
    """
    from ..training.package import About, package_checkpoint, parse_author, write_package

    about = About(
        name=name,
        description=description,
        authors=tuple(parse_author(a) for a in authors),
        training_data=training_data,
        tags=tuple(tags),
    )
    output = output or model.with_suffix(".zip")
    if model.suffix.lower() in (".pt", ".pth"):
        package_checkpoint(model, output, overwrite=overwrite, about=about)
    else:
        write_package(model, output, normalization=normalization, overwrite=overwrite, about=about)
    out.info(f"wrote {output}")
    from .. import domain
    from ..models.open import open_model

    # what the packaged model's domain guard knows (unet_edge.training.domain_data)
    out.info(f"domain guard: {domain.describe(open_model(output).info.domain)}")
