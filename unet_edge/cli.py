"""The ``unet-edge`` command line. Thin: each command parses options, calls the
library, and reports. Library errors become one line on stderr and exit code 1;
usage errors exit 2 (click's convention)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from . import __version__
from .errors import InputError, ModelError, OutputError, OutputExistsError, UnetEdgeError

F = TypeVar("F", bound=Callable[..., Any])


class _Group(click.Group):
    """Turns unet-edge errors (and a missing torch) into one line and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UnetEdgeError as e:
            click.echo(f"Error: {e}", err=True)
            ctx.exit(1)
        except ModuleNotFoundError as e:
            if e.name and e.name.split(".")[0] in ("torch", "skimage", "dask", "distributed"):
                extra = {"torch": "train", "skimage": "eval"}.get(e.name.split(".")[0], "dask")
                click.echo(
                    f"Error: this command needs {e.name}; install it with "
                    f"pip install 'unet-edge[{extra}]'",
                    err=True,
                )
                ctx.exit(1)
            raise
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)


class _Out:
    """Where the CLI talks: -q silences, -v adds detail. Errors always go to stderr."""

    def __init__(self, verbosity: int) -> None:
        self.verbosity = verbosity

    def info(self, msg: str) -> None:
        if self.verbosity >= 0:
            click.echo(msg, err=True)

    def detail(self, msg: str) -> None:
        if self.verbosity > 0:
            click.echo(msg, err=True)


def _verbosity_options(f: F) -> F:
    f = click.option("-v", "--verbose", count=True, help="More detail (repeatable).")(f)
    return click.option("-q", "--quiet", is_flag=True, help="Only errors.")(f)


def _out(verbose: int, quiet: bool) -> _Out:
    return _Out(-1 if quiet else verbose)


def _model_option(f: F) -> F:
    return click.option(
        "--model",
        "-m",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="ONNX model from `unet-edge export` [default: the shipped ISBI 2012 model].",
    )(f)


def _provider_options(f: F) -> F:
    f = click.option(
        "--threads",
        type=click.IntRange(min=1),
        default=None,
        help="CPU threads for inference [default: all cores].",
    )(f)
    f = click.option(
        "--device-id",
        type=click.IntRange(min=0),
        default=0,
        show_default=True,
        help="GPU index for cuda/tensorrt.",
    )(f)
    return click.option(
        "--provider",
        "-p",
        default="cpu",
        show_default=True,
        help="Execution provider: cpu, cuda, tensorrt or auto (best that really works).",
    )(f)


def _provider_opts(threads: int | None, device_id: int) -> Any:
    from .providers import ProviderOptions

    return ProviderOptions(threads=threads, device_id=device_id)


def _tile(value: str | None) -> int | tuple[int, int] | None:
    if value is None or value == "auto":
        return None
    try:
        parts = [int(v) for v in value.lower().replace("x", ",").split(",")]
    except ValueError:
        raise click.BadParameter(f"expected N or HxW, got {value!r}") from None
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise click.BadParameter(f"expected N or HxW, got {value!r}")


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="unet-edge")
def main() -> None:
    """U-Net segmentation from training to the microscope."""


# -- export -------------------------------------------------------------------
@main.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="ONNX file to write [default: CHECKPOINT with suffix .onnx].",
)
@click.option("--opset", type=click.IntRange(min=17), default=17, show_default=True)
@click.option(
    "--fp16",
    is_flag=True,
    help="Write a half-precision graph for CUDA/TensorRT "
    "(float32 in and out; slow on the CPU provider).",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@_verbosity_options
def export(
    checkpoint: Path,
    output: Path | None,
    opset: int,
    fp16: bool,
    overwrite: bool,
    verbose: int,
    quiet: bool,
) -> None:
    """Export a training checkpoint to one self-describing ONNX file.

    The graph is run in ONNX Runtime and compared with PyTorch before it is
    written; it is refused if they disagree.
    """
    out = _out(verbose, quiet)
    output = output or checkpoint.with_suffix(".onnx")
    if output.exists() and not overwrite:
        raise OutputExistsError(f"{output} exists; pass --overwrite to replace it")
    from .training.export import export_checkpoint

    report = export_checkpoint(checkpoint, output, opset=opset, overwrite=overwrite, fp16=fp16)
    out.info(report.summary())
    for p in report.parity:
        out.detail(
            f"  parity {tuple(p['shape'])}: max abs {p['max_abs_error']:.2e}, "
            f"relative {p['rel_error']:.2e}"
        )


# -- run ----------------------------------------------------------------------
def _outputs_for(inp: Path, folder: Path, probabilities: bool, overlay: bool) -> dict[str, Path]:
    tiff = inp.suffix.lower() in (".tif", ".tiff")
    outs = {"mask": folder / f"{inp.stem}_mask{'.tif' if tiff else '.png'}"}
    if probabilities:
        outs["probabilities"] = folder / f"{inp.stem}_probabilities.tif"
    if overlay:
        outs["overlay"] = folder / f"{inp.stem}_overlay.png"
    return outs


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("unet-edge-output"),
    show_default=True,
    help="Folder for the results (created if missing).",
)
@_model_option
@_provider_options
@click.option(
    "--tile",
    default=None,
    help="Tile input size N or HxW, legal for the model "
    "(see `unet-edge info`) [default: chosen per image].",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Tiles per inference call [default: 1 on CPU, 4 on GPU].",
)
@click.option(
    "--probabilities",
    is_flag=True,
    help="Also write float32 class probabilities as TIFF (classes, H, W).",
)
@click.option("--overlay", is_flag=True, help="Also write an RGB PNG of the image with the mask.")
@click.option(
    "--large",
    is_flag=True,
    help="TIFF images larger than memory: read window by window and write a tiled mask TIFF; "
    "memory does not grow with the image.",
)
@click.option(
    "--memory-budget",
    type=click.IntRange(min=1),
    default=None,
    help="MiB of estimated activation memory per inference call when the tile is chosen "
    "[default: 1024; 256 with --large].",
)
@click.option("--overwrite", is_flag=True, help="Replace existing result files.")
@_verbosity_options
def run(
    inputs: Sequence[str],
    output: Path,
    model: Path | None,
    provider: str,
    threads: int | None,
    device_id: int,
    tile: str | None,
    batch_size: int | None,
    probabilities: bool,
    overlay: bool,
    large: bool,
    memory_budget: int | None,
    overwrite: bool,
    verbose: int,
    quiet: bool,
) -> None:
    """Segment images: files, folders or glob patterns.

    Writes NAME_mask.png (0/255 for two classes, class indices otherwise;
    .tif for TIFF inputs, one page per slice of a stack) into the output folder.
    """
    from . import io, processing
    from .runtime import Segmenter

    out = _out(verbose, quiet)
    paths = io.collect_inputs(inputs)
    if output.exists() and not output.is_dir():
        raise OutputError(f"--output {output} is a file, expected a folder")
    if large and (
        probabilities or overlay or any(p.suffix.lower() not in io.TIFF_SUFFIXES for p in paths)
    ):
        raise InputError("--large takes TIFF inputs and writes only the mask; "
                         "drop --probabilities/--overlay and non-TIFF inputs")  # fmt: skip
    plan = [(p, _outputs_for(p, output, probabilities, overlay)) for p in paths]
    seen: dict[Path, Path] = {}
    for p, outs in plan:  # every output is checked before any compute
        for o in outs.values():
            if o in seen:
                raise InputError(
                    f"inputs {seen[o]} and {p} would both write {o}; rename one "
                    "or run them into different --output folders"
                )
            seen[o] = p
            if output.is_dir():
                io.check_output(o, overwrite, paths)
    if memory_budget is None and large:
        from .large import LARGE_MEMORY_BUDGET

        memory_budget = LARGE_MEMORY_BUDGET >> 20
    budget = {} if memory_budget is None else {"memory_budget": memory_budget << 20}
    with Segmenter(
        model,
        provider,
        _tile(tile),
        batch_size,
        options=_provider_opts(threads, device_id),
        **budget,
    ) as seg:
        output.mkdir(parents=True, exist_ok=True)  # only once the model and provider work
        for note in seg.notes:
            out.info(note)
        out.detail(f"{seg!r}: {seg.geometry.describe()}")
        prov = seg.provenance()
        show_bar = sys.stderr.isatty() and out.verbosity >= 0 and len(plan) > 1
        with (
            click.progressbar(plan, label="Segmenting", file=sys.stderr, show_pos=True)
            if show_bar
            else _nullbar(plan) as bar
        ):
            for path, outs in bar:
                t0 = time.perf_counter()
                if large:
                    from .large import segment_large

                    segment_large(seg, path, outs["mask"])
                    out.detail(f"{path} -> {outs['mask']} ({time.perf_counter() - t0:.2f} s)")
                    continue
                image = io.read_image(path)
                # Only a multi-page TIFF is a stack; (H, W, 3) from a PNG is one colour frame.
                stack = io.is_stack(path)
                probs = seg.predict(list(image)) if stack else seg.predict_frame(image)
                mask = processing.to_mask(probs)
                saved = processing.mask_to_image(mask, seg.info.classes)
                prov_i = {**prov, "source": path.name}
                if outs["mask"].suffix == ".tif":
                    io.write_tiff(outs["mask"], saved, prov_i, compression="zlib")
                else:
                    io.write_png(outs["mask"], saved)
                if "probabilities" in outs:
                    io.write_tiff(outs["probabilities"], probs, prov_i)
                if "overlay" in outs:
                    frame = image if mask.ndim == 2 else image[0]
                    io.write_png(
                        outs["overlay"],
                        processing.overlay(frame, mask if mask.ndim == 2 else mask[0]),
                    )
                out.detail(
                    f"{path}: {image.shape} {image.dtype} -> {outs['mask']} "
                    f"({time.perf_counter() - t0:.2f} s, {seg.plan_for(mask.shape[-2:])})"
                )
    out.info(f"wrote {sum(len(o) for _, o in plan)} file(s) to {output}")


class _nullbar:
    def __init__(self, items: Sequence[Any]) -> None:
        self.items = items

    def __enter__(self) -> Sequence[Any]:
        return self.items

    def __exit__(self, *exc: object) -> None:
        return None


# -- info ---------------------------------------------------------------------
@main.command()
@click.argument("model", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the model metadata as JSON.")
def info(model: Path | None, as_json: bool) -> None:
    """Describe a model (default: the shipped one) and the execution providers here."""
    from . import metadata, providers
    from .runtime import default_model_path

    path = model or default_model_path()
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist")
    mi = metadata.read(path)
    if as_json:
        click.echo(json.dumps(mi.to_dict(), indent=2, sort_keys=True))
        return
    g = mi.geometry
    a = mi.architecture
    click.echo(f"model      {path} ({path.stat().st_size / 1e6:.2f} MB)")
    click.echo(f"name       {mi.name}  precision {mi.precision.value}")
    click.echo(
        f"network    U-Net depth {a.depth}, base width {a.base_width}, padding "
        f"{a.padding.value}, batch norm {a.batch_norm}"
    )
    click.echo(f"input      {mi.channels} channel(s), normalisation {mi.normalization.to_dict()}")
    click.echo(f"classes    {', '.join(mi.class_names)}")
    click.echo(f"geometry   halo {g.halo} px, alignment {g.alignment} px, border {mi.border.value}")
    legal = g.legal_inputs(g.min_input + 8 * g.alignment)
    click.echo(
        f"tiles      legal inputs {g.min_input} + {g.alignment}k: "
        + ", ".join(f"{t}->{g.output_size(t)}" for t in legal)
        + ", ..."
    )
    if mi.metrics:
        click.echo(f"metrics    {json.dumps(mi.metrics, sort_keys=True)}")
    if mi.provenance:
        click.echo(f"provenance {json.dumps(mi.provenance, sort_keys=True)}")
    click.echo("providers")
    for prov, installed, reason in providers.report():
        state = (
            "works"
            if installed and reason is None
            else (f"installed, not usable: {reason}" if installed else "not installed")
        )
        click.echo(f"  {prov.value:<9} {state}")


# -- train ---------------------------------------------------------------------
@main.command()
@click.argument("data_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Checkpoint to write (best weights); resumable state goes to OUTPUT.last.pt.",
)
@click.option(
    "--width",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Feature maps at the top level (the paper: 64).",
)
@click.option("--depth", type=click.IntRange(0, 8), default=4, show_default=True)
@click.option(
    "--tile",
    type=click.IntRange(min=1),
    default=444,
    show_default=True,
    help="Training tile input size (legal for the depth).",
)
@click.option("--steps", type=click.IntRange(min=1), default=3000, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=5e-4, show_default=True)
@click.option(
    "--optimizer",
    type=click.Choice(["adam", "sgd"]),
    default="adam",
    show_default=True,
    help="sgd is the paper's (momentum 0.99, batch 1).",
)
@click.option("--momentum", type=click.FloatRange(0, 1), default=0.99, show_default=True)
@click.option(
    "--schedule", type=click.Choice(["cosine", "constant"]), default="cosine", show_default=True
)
@click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--val",
    "val",
    default="",
    help="Image names held out for validation, e.g. "
    "20-24 or 20,21 [default: none, the last weights are kept].",
)
@click.option(
    "--train-names", default=None, help="Image names to train on [default: all not in --val]."
)
@click.option("--val-every", type=click.IntRange(min=1), default=250, show_default=True)
@click.option(
    "--select",
    default="rand_error_expanded",
    show_default=True,
    type=click.Choice(
        ["rand_error_expanded", "pixel_error", "rand_error", "vi", "vi_expanded", "iou", "dice"]
    ),
    help="Validation metric that picks the best checkpoint.",
)
@click.option("--seed", type=int, default=2012, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--no-augment", is_flag=True, help="Disable elastic/flip/gray-value augmentation.")
@click.option(
    "--elastic-sigma",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Std (px) of the 3x3-grid elastic displacements.",
)
@click.option("--name", default=None, help="Model name [default: OUTPUT's stem].")
@click.option(
    "--resume",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Continue from OUTPUT.last.pt written by an earlier run.",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing OUTPUT.")
@_verbosity_options
def train(
    data_dir: Path,
    output: Path,
    width: int,
    depth: int,
    tile: int,
    steps: int,
    lr: float,
    optimizer: str,
    momentum: float,
    schedule: str,
    batch_size: int,
    val: str,
    train_names: str | None,
    val_every: int,
    select: str,
    seed: int,
    threads: int,
    no_augment: bool,
    elastic_sigma: float,
    name: str | None,
    resume: Path | None,
    overwrite: bool,
    verbose: int,
    quiet: bool,
) -> None:
    """Train a U-Net the paper's way on DATA_DIR (with image/ and label/ folders).

    Random mirrored tiles, elastic deformations, softmax cross-entropy weighted by the
    border weight map (w0 = 10, sigma = 5 px). The ISBI 2012 recipe of the shipped model:
    unet-edge train ../shared/data/isbi2012/train -o ckpt.pt --val 20-24
    """
    from .evaluate import parse_names
    from .training.loop import Optimizer, Schedule, TrainConfig, TrainEvent
    from .training.loop import train as run_training

    out = _out(verbose, quiet)
    config = TrainConfig(
        width=width,
        depth=depth,
        tile=tile,
        steps=steps,
        lr=lr,
        optimizer=Optimizer(optimizer),
        momentum=momentum,
        schedule=Schedule(schedule),
        batch_size=batch_size,
        val_names=parse_names(val) if val else (),
        train_names=parse_names(train_names) if train_names else None,
        seed=seed,
        val_every=val_every,
        threads=threads,
        augment=not no_augment,
        elastic_sigma=elastic_sigma,
        select=select,
        name=name or output.stem,
    )
    show_bar = sys.stderr.isatty() and out.verbosity >= 0
    bar = click.progressbar(length=steps, label="Training", file=sys.stderr) if show_bar else None

    def progress(e: TrainEvent) -> None:
        if bar is not None:
            bar.pos = e.step - 1
            bar.update(1)
            bar.label = f"Training (loss {e.loss:.3f})"
        if e.val is not None:
            shown = {
                k: round(v, 4) for k, v in e.val.items() if "_split" not in k and "_merge" not in k
            }
            out.info(f"step {e.step}: {json.dumps(shown)}{' (best)' if e.best else ''}")
        elif bar is None and e.step % 50 == 0:
            out.detail(f"step {e.step}/{e.steps} loss {e.loss:.4f} lr {e.lr:.2e}")

    try:
        result = run_training(
            config, data_dir, output, progress=progress, resume=resume, overwrite=overwrite
        )
    finally:
        if bar is not None:
            bar.render_finish()
    out.info(
        f"best checkpoint {result.output} (step {result.best_step}, "
        f"{result.parameters:,} parameters, {result.elapsed_s / 60:.1f} min); "
        f"resume state {result.last}"
    )
    if result.best_metrics:
        out.info(
            "validation " + json.dumps({k: round(v, 4) for k, v in result.best_metrics.items()})
        )


# -- evaluate ------------------------------------------------------------------
@main.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("images", type=click.Path(file_okay=False, path_type=Path))
@click.argument("labels", type=click.Path(file_okay=False, path_type=Path))
@click.option("--names", default=None, help="Only these image names, e.g. 20-24.")
@click.option(
    "--expand",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Pixels predicted cells grow over predicted background for the *_expanded scores.",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the scores as JSON.",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing --json file.")
@_provider_options
@click.option("--tile", default=None, help="Tile input size N or HxW [default: auto].")
@click.option("--batch-size", type=click.IntRange(min=1), default=None)
@_verbosity_options
def evaluate(
    model: Path,
    images: Path,
    labels: Path,
    names: str | None,
    expand: int,
    json_path: Path | None,
    overwrite: bool,
    provider: str,
    threads: int | None,
    device_id: int,
    tile: str | None,
    batch_size: int | None,
    verbose: int,
    quiet: bool,
) -> None:
    """Score MODEL on IMAGES against LABELS (matching names); MODEL `default` is the shipped one.

    Pixel error, adapted Rand error and variation of information (on connected
    components of the foreground; raw and with predicted cells expanded), IoU and
    Dice, per image and averaged. Runs the same Segmenter as `run`.
    """
    from . import io
    from .evaluate import evaluate_model, parse_names

    out = _out(verbose, quiet)
    if json_path is not None:
        io.check_output(json_path, overwrite)
    result = evaluate_model(
        None if str(model) == "default" else model,
        images,
        labels,
        provider=provider,
        names=parse_names(names) if names else None,
        expand=expand,
        progress=lambda name, m: out.detail(
            f"{name}: " + json.dumps({k: round(v, 4) for k, v in m.items()})
        ),
        tile=_tile(tile),
        batch_size=batch_size,
        options=_provider_opts(threads, device_id),
    )
    mean = result["mean"]
    click.echo(f"{len(result['images'])} image(s), model {result['model']}")
    for key in (
        "pixel_error",
        "rand_error",
        "rand_error_expanded",
        "vi",
        "vi_expanded",
        "iou",
        "dice",
    ):
        if key in mean:
            click.echo(f"  {key:<20} {mean[key]:.4f}")
    if json_path is not None:
        text = json.dumps(result, indent=2, sort_keys=True, default=str)
        with io.atomic_path(json_path) as tmp:
            tmp.write_text(text + "\n")
        out.info(f"wrote {json_path}")


# -- quantize -----------------------------------------------------------------
@main.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--calibrate",
    "-c",
    "calibrate",
    multiple=True,
    required=True,
    help="Calibration images: files, folders or globs (repeatable).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="ONNX file to write [default: MODEL with suffix .int8.onnx].",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1, min_open=True),
    default=None,
    help="Share of pixels whose class must match fp32 [default: 0.995].",
)
@click.option("--tile", default=None, help="Calibration tile N or HxW [default: as `run`].")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@_verbosity_options
def quantize(
    model: Path,
    calibrate: Sequence[str],
    output: Path | None,
    threshold: float | None,
    tile: str | None,
    overwrite: bool,
    verbose: int,
    quiet: bool,
) -> None:
    """Write a static int8 (QDQ, uint8 activations, int8 weights) copy of an fp32 MODEL.

    Calibrated on real images; written only if its masks agree with the fp32
    model's on those images (default: at least 99.5% of pixels).
    """
    from . import io, precision

    out = _out(verbose, quiet)
    output = output or model.with_name(model.name.removesuffix(".onnx") + ".int8.onnx")
    if output.exists() and not overwrite:
        raise OutputExistsError(f"{output} exists; pass --overwrite to replace it")
    images = io.collect_inputs(calibrate)
    report = precision.quantize(
        model,
        images,
        output,
        overwrite=overwrite,
        tile=_tile(tile),
        threshold=precision.AGREEMENT_THRESHOLD if threshold is None else threshold,
    )
    out.info(report.summary())


# -- bench --------------------------------------------------------------------
_BACKENDS_HELP = (
    "Comma-separated subset of torch, ort-fp32, ort-int8, cuda-fp32, tensorrt-fp32, "
    "tensorrt-fp16, openvino [default: all]."
)


@main.command()
@_model_option
@click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="ISBI 2012 train folder (image/, label/) [default: ../shared/data/isbi2012/"
    "train beside the repository].",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("benchmarks/results"),
    show_default=True,
    help="Folder for bench.json, bench.md and bench.png.",
)
@click.option("--quick", is_flag=True, help="Seconds instead of minutes: 512x512 only, one repeat.")
@click.option(
    "--sizes", default=None, help="Image sides, comma-separated [default: 512,1024,2048,4096]."
)
@click.option("--backends", default=None, help=_BACKENDS_HELP)
@click.option(
    "--int8-model",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A quantised model to use [default: quantise MODEL on ISBI slices 00-09].",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="CPU threads for every backend [default: all cores].",
)
@_verbosity_options
def bench(
    model: Path | None,
    data: Path | None,
    output: Path,
    quick: bool,
    sizes: str | None,
    backends: str | None,
    int8_model: Path | None,
    threads: int | None,
    verbose: int,
    quiet: bool,
) -> None:
    """Measure speed and fidelity of every backend on the same model, images and tiles."""
    from . import bench as bench_mod
    from .runtime import default_model_path

    out = _out(verbose, quiet)
    model = model or default_model_path()
    data = data or Path(__file__).resolve().parents[2] / "shared" / "data" / "isbi2012" / "train"
    kw: dict[str, Any] = {"threads": threads, "int8_model": int8_model}
    if sizes:
        try:
            kw["sizes"] = tuple(int(v) for v in sizes.split(","))
        except ValueError:
            raise click.BadParameter(f"expected sides like 512,2048, got {sizes!r}") from None
    if backends:
        kw["backends"] = tuple(v.strip() for v in backends.split(","))
    cfg = (
        bench_mod.BenchConfig.quick_config(model, data, output, **kw)
        if quick
        else bench_mod.BenchConfig(model=model, data=data, out_dir=output, **kw)
    )
    result = bench_mod.run(cfg, progress=out.detail)
    out.info((output / "bench.md").read_text())
    out.info(f"wrote bench.json, bench.md and bench.png to {output} in {result['seconds']:.0f} s")


if __name__ == "__main__":  # pragma: no cover
    main()
