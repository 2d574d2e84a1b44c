"""``unet-edge train`` (the paper's recipe) and ``unet-edge evaluate`` (score a model).

The training options take their defaults from the fields of
:class:`unet_edge.training.config.TrainConfig` (torch-free), the one source
of the recipe; torch is imported only when a command runs.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..training.config import (
    HIGHER_IS_BETTER,
    LABEL_KINDS,
    LOWER_IS_BETTER,
    TARGETS,
    Optimizer,
    Schedule,
    TrainConfig,
)
from . import options as o

if TYPE_CHECKING:
    from ..training.loop import TrainEvent

F = Callable[..., Any]

_DEFAULTS = {f.name: f.default for f in fields(TrainConfig)}


def _config_opt(name: str, *decls: str, **kwargs: Any) -> Callable[[F], F]:
    """An option for TrainConfig field ``name``, with the field's default."""
    default = _DEFAULTS[name]
    kwargs.setdefault("show_default", True)
    return click.option(
        *(decls or (f"--{name.replace('_', '-')}",)),
        name,
        default=default.value if isinstance(default, enum.Enum) else default,
        **kwargs,
    )


def _choice(kind: type[enum.Enum]) -> click.Choice[str]:
    return click.Choice([str(m.value) for m in kind])


_CONFIG_OPTIONS = (
    _config_opt(
        "width", type=click.IntRange(min=1), help="Feature maps at the top level (the paper: 64)."
    ),
    _config_opt("depth", type=click.IntRange(0, 8), help="Poolings (the paper: 4)."),
    _config_opt(
        "tile", type=click.IntRange(min=1), help="Training tile input size, legal for the depth."
    ),
    _config_opt("steps", type=click.IntRange(min=1), help="Optimiser steps."),
    _config_opt("lr", type=click.FloatRange(min=0, min_open=True), help="Learning rate."),
    _config_opt(
        "optimizer", type=_choice(Optimizer), help="sgd is the paper's (momentum, batch 1)."
    ),
    _config_opt("momentum", type=click.FloatRange(0, 1), help="SGD momentum (the paper: 0.99)."),
    _config_opt("schedule", type=_choice(Schedule), help="Learning-rate schedule."),
    _config_opt("batch_size", type=click.IntRange(min=1), help="Tiles per step."),
    _config_opt("val_every", type=click.IntRange(min=1), help="Validate every N steps."),
    _config_opt(
        "select",
        type=click.Choice([*LOWER_IS_BETTER, *HIGHER_IS_BETTER]),
        help="Validation metric that picks the best checkpoint.",
    ),
    _config_opt("seed", type=int, help="Random seed (runs are reproducible)."),
    _config_opt("threads", type=click.IntRange(min=1), help="CPU threads for PyTorch."),
    _config_opt(
        "augment", "--augment/--no-augment", help="Elastic, flip and gray-value augmentation."
    ),
    _config_opt(
        "elastic_sigma",
        type=click.FloatRange(min=0),
        help="Std (px) of the 3x3-grid elastic displacements.",
    ),
    _config_opt(
        "norm_low",
        type=click.FloatRange(0, 100),
        help="Percentile of each image mapped to 0 (per-image normalisation).",
    ),
    _config_opt(
        "norm_high",
        type=click.FloatRange(0, 100),
        help="Percentile mapped to 1 (70 suits EM; 99.8 suits sparse bright objects).",
    ),
    _config_opt(
        "norm_clip",
        "--norm-clip/--no-norm-clip",
        help="Clip the scaled values to 0..1 (saturated pixels then cannot change the input).",
    ),
    _config_opt(
        "exposure",
        type=click.FloatRange(0, 1),
        help="Probability of the camera gain/offset augmentation (suits EM); 0 for dim "
        "fluorescence, whose range is a small part of its dtype's.",
    ),
    _config_opt(
        "target",
        type=click.Choice(list(TARGETS)),
        help="What instance labels train: two-class (background, cell; touching lines as "
        "background) or three-class (adds a border class where cells touch).",
    ),
    _config_opt(
        "border",
        type=click.FloatRange(min=0, min_open=True),
        help="Width (px) of the three-class border bands, on each side of a contact.",
    ),
    _config_opt(
        "split",
        type=click.Choice(["watershed", "none"]),
        help="State in the exported model how its objects are best made: split touching ones "
        "(watershed) or not; `run --labels` and label() then follow it [default: not stated].",
    ),
    _config_opt(
        "min_size",
        type=o.MinSizeType(),
        help="State in the exported model the smallest object its labels keep (e.g. 10px) "
        "[default: not stated].",
    ),
    _config_opt(
        "pixel_size",
        type=click.FloatRange(min=0, min_open=True),
        help="The images' pixel size in um (0.004: 4 nm), recorded in the model: images of "
        "another pixel size are then resampled to it [default: unknown, not resampled].",
    ),
)


def _config_options(f: F) -> F:
    for opt in reversed(_CONFIG_OPTIONS):
        f = opt(f)
    return f


@click.command(short_help="Train a U-Net the paper's way on a folder of images and labels.")
@click.argument("data_dir", type=click.Path(file_okay=False, path_type=Path))
@o.output_opt(
    "Checkpoint to write (best weights); resumable state goes to OUTPUT.last.pt", required=True
)
@_config_options
@click.option(
    "--val",
    default="",
    help="Image names held out for validation, e.g. 20-24 or "
    "20,21 [default: none, the last weights are kept].",
)
@click.option(
    "--train-names", default=None, help="Image names to train on [default: all not in --val]."
)
@click.option("--name", default=None, help="Model name [default: OUTPUT's stem].")
@click.option(
    "--classes",
    default=None,
    help="Class names, one per label value from 0, e.g. background,nucleus "
    "[default: DATA_DIR/classes.txt (one name a line), else membrane,cell; instance labels: "
    "background,cell(,border)].",
)
@click.option(
    "--labels",
    "label_kind",
    type=click.Choice(["auto", *LABEL_KINDS]),
    default="auto",
    show_default=True,
    help="What the label files hold: class indices (or 0/255 masks) or instance ids (one "
    "value per object); auto reads them as instances when a file holds a value that is no "
    "class index, and says so.",
)
@click.option(
    "--training-data",
    default="",
    help="What the images are, in words, recorded in the model's metadata and packages "
    "[default: the data folder's name and image count].",
)
@o.path_opt("--resume", help="Continue from OUTPUT.last.pt written by an earlier run.")
@o.path_opt(
    "--init",
    help="Start a new run from the weights of this checkpoint (.pt; fine-tuning), or of "
    "isbi2012-default (the shipped model; its checkpoint is in source checkouts only); its "
    "width, depth and classes are kept unless given.",
)
@click.option(
    "--device",
    type=click.Choice(["cpu", "cuda", "auto"]),
    default="cpu",
    show_default=True,
    help="Train on the CPU or a CUDA GPU (mixed precision: bf16, or fp16 with loss scaling); "
    "auto takes the GPU if PyTorch sees one and says which.",
)
@click.option(
    "--log-every",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="When stderr is not a terminal, print the progress line every N steps.",
)
@o.overwrite_opt
@o.verbosity_options
@click.pass_context
def train(
    ctx: click.Context,
    data_dir: Path,
    output: Path,
    val: str,
    train_names: str | None,
    name: str | None,
    classes: str | None,
    label_kind: str,
    resume: Path | None,
    init: Path | None,
    device: str,
    log_every: int,
    overwrite: bool,
    out: o.Reporter,
    **settings: Any,
) -> None:
    """Train a U-Net the paper's way on DATA_DIR (with image/ and label/ folders).

    Random mirrored tiles, elastic deformations, softmax cross-entropy weighted
    by the border weight map (w0 = 10, sigma = 5 px). The defaults are the
    shipped model's recipe. Shows step, loss, steps per second and time left.

    \b
    Example (the shipped model's first 3000 steps):
      unet-edge train ../shared/data/isbi2012/train -o ckpt.pt --val 20-24
    """
    from ..datasets import parse_names
    from ..training.device import resolve
    from ..training.loop import train as run_training

    _label_settings(data_dir, classes, label_kind, settings, out)
    if settings.get("min_size") is not None:  # a MinSize; the checkpoint keeps its text
        settings["min_size"] = str(settings["min_size"])
    if init is not None:
        _keep_init_architecture(ctx, init, settings)
    config = TrainConfig(
        **settings,
        val_names=parse_names(val) if val else (),
        train_names=parse_names(train_names) if train_names else None,
        name=name or output.stem,
    )
    dev = resolve(device)
    (out.detail if device == "cpu" else out.info)(dev.note)
    with _progress(out, log_every) as progress:
        result = run_training(
            config, data_dir, output, progress, resume, overwrite, init, device=dev
        )
    measured = {k: v for k, v in result.best_metrics.items() if k != "step"}
    kind = "best checkpoint" if measured else "checkpoint (last weights; no --val images)"
    out.info(
        f"{kind} {result.output} (step {result.best_step}, "
        f"{result.parameters:,} parameters, {result.elapsed_s / 60:.1f} min); "
        f"resume state {result.last}"
    )
    if measured:
        out.info(f"validation at step {result.best_step}: {_rounded(measured)}")


def _label_settings(
    data_dir: Path, classes: str | None, kind: str, settings: dict[str, Any], out: o.Reporter
) -> None:
    """Class names (--classes, else DATA_DIR/classes.txt) and the label kind (--labels; auto
    looks at the files and says what it found) into ``settings``."""
    from ..datasets import find_pairs, split_folder
    from ..training.config import class_names_for
    from ..training.instances import detect_label_kind, read_class_names, target_class_names

    named = class_names_for(classes)
    if not named:
        from_file = read_class_names(data_dir)
        if from_file is not None:
            named = {"classes": len(from_file), "class_names": from_file}
            out.info(f"class names from {data_dir / 'classes.txt'}: {', '.join(from_file)}")
    if kind == "auto":
        labels = [p[2] for p in find_pairs(*split_folder(data_dir))]
        kind, why = detect_label_kind(labels, int(named.get("classes", 2)))
        # class maps are what train always read; instance ids are said (they change the target)
        (out.info if kind == "instances" else out.detail)(
            f"labels: {why} (state it with --labels {kind})"
        )
    if kind == "instances" and not named:
        names = target_class_names(settings.get("target", "two-class"))
        named = {"classes": len(names), "class_names": names}
    settings.update(named, labels=kind)


def _keep_init_architecture(ctx: click.Context, init: Path, settings: dict[str, Any]) -> None:
    """Fine-tuning: take width, depth and classes from ``init`` where the command line did not."""
    from ..training import checkpoint as ckpt
    from ..training.loop import init_checkpoint

    c = ckpt.load(init_checkpoint(init))
    given = {
        n
        for n in ("width", "depth", "classes")
        if ctx.get_parameter_source(n) is click.core.ParameterSource.COMMANDLINE
    }
    if "width" not in given:
        settings["width"] = c.config.base_width
    if "depth" not in given:
        settings["depth"] = c.config.depth
    if "classes" not in given:
        settings.update(classes=c.config.classes, class_names=tuple(c.class_names))


def _rounded(metrics: dict[str, float]) -> str:
    return json.dumps({k: round(v, 4) for k, v in metrics.items()})


def _clock(seconds: float) -> str:
    """``h:mm:ss`` (or ``m:ss``) of a duration."""
    m, sec = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def progress_line(e: TrainEvent) -> str:
    """``step 12/3000  loss 0.4123  1.92 steps/s  25:58 left`` for one training event."""
    return (
        f"step {e.step}/{e.steps}  loss {e.loss:.4f}  {e.rate:.2f} steps/s  {_clock(e.eta_s)} left"
    )


@contextmanager
def _progress(out: o.Reporter, every: int) -> Iterator[Callable[[TrainEvent], None]]:
    """A training progress callback on stderr.

    On a terminal one line rewritten after every step; otherwise that line after
    the first step, every ``every`` steps and the last; validation scores as
    lines whenever they are measured; nothing with -q.
    """
    live = out.bars
    shown = [0]  # width of the live line, to blank it before another line

    def progress(e: TrainEvent) -> None:
        line = progress_line(e)
        if live:
            click.echo("\r" + line.ljust(shown[0]), nl=False, err=True)
            shown[0] = len(line)
        elif e.step == e.start + 1 or e.step % every == 0 or e.step == e.steps:
            out.info(line)
        if e.val is not None:
            if live:  # end the live line; the next step starts a new one
                click.echo("", err=True)
                shown[0] = 0
            kept = {k: v for k, v in e.val.items() if "_split" not in k and "_merge" not in k}
            out.info(f"step {e.step}: validation {_rounded(kept)}{' (best)' if e.best else ''}")

    try:
        yield progress
    finally:
        if live and shown[0]:
            click.echo("", err=True)


_SCORES = ("pixel_error", "rand_error", "rand_error_expanded", "vi", "vi_expanded", "iou", "dice")


@click.command(
    short_help="Score a model on images against labels: pixel error, Rand, VI, IoU, Dice."
)
@click.argument("images", type=click.Path(file_okay=False, path_type=Path))
@click.argument("labels", type=click.Path(file_okay=False, path_type=Path))
@o.segmenter_options
@click.option("--names", default=None, help="Only these image names, e.g. 20-24.")
@click.option(
    "--expand",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Pixels predicted cells grow over predicted background for the *_expanded scores.",
)
@o.path_opt("--json", "json_path", help="Also write the scores as JSON.")
@o.tta_opt
@o.overwrite_opt
@o.verbosity_options
def evaluate(
    images: Path,
    labels: Path,
    segmenter: o.SegmenterArgs,
    names: str | None,
    expand: int,
    json_path: Path | None,
    tta: bool,
    overwrite: bool,
    out: o.Reporter,
) -> None:
    """Score a model on IMAGES against LABELS (files paired by name).

    Pixel error, adapted Rand error and variation of information (on connected
    components of the foreground; raw and with predicted cells expanded), IoU
    and Dice, per image and averaged. Runs the same Segmenter as `run`.

    \b
    Example (the shipped model on its validation slices):
      unet-edge evaluate ../shared/data/isbi2012/train/image \\
        ../shared/data/isbi2012/train/label --names 20-24 --json scores.json
    """
    from .. import io
    from ..datasets import parse_names
    from ..evaluate import evaluate_model

    if json_path is not None:
        io.check_output(json_path, overwrite)
    result = evaluate_model(
        segmenter.model,
        images,
        labels,
        names=parse_names(names) if names else None,
        expand=expand,
        progress=lambda name, m: out.detail(f"{name}: {_rounded(m)}"),
        tta=tta,
        **segmenter.kwargs(),
    )
    click.echo(f"{len(result['images'])} image(s), model {result['model']}")
    for key in (k for k in _SCORES if k in result["mean"]):
        click.echo(f"  {key:<20} {result['mean'][key]:.4f}")
    if json_path is not None:
        text = json.dumps(result, indent=2, sort_keys=True, default=str)
        with io.atomic_path(json_path) as tmp:
            tmp.write_text(text + "\n")
        out.info(f"wrote {json_path}")
