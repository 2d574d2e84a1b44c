"""The training loop: seeded, resumable, validated, keeping the best checkpoint.

:func:`train` is the body of ``unet-edge train``. It trains a valid U-Net on
random mirrored, elastically deformed tiles with the weighted cross-entropy,
validates every ``val_every`` steps on whole held-out images (mirror-padded
exactly as the runtime does), writes the best weights to ``output`` and the
latest state to ``<output stem>.last<suffix>`` for resuming. Both files are
ordinary checkpoints (:mod:`unet_edge.training.checkpoint`) whose
``training`` dictionary holds the step, the history and the training config;
the ``.last`` file also holds the optimiser state and the random generator
states, so the best checkpoint stays as small as the weights.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import kernel, tiling
from ..config import Normalization
from ..datasets import find_pairs, parse_names, split_folder
from ..errors import CheckpointError, ConfigError, DataError, OutputExistsError
from ..evaluate import mean_metrics, segmentation_metrics
from ..geometry import Geometry
from . import checkpoint as ckpt
from .augment import AugmentConfig
from .config import LOWER_IS_BETTER, Optimizer, Schedule, TrainConfig
from .data import SegmentationData, normalize
from .device import CPU, TrainDevice, resolve
from .loss import weighted_cross_entropy
from .model import UNet, count_parameters

# Re-exported: TrainConfig, Optimizer, Schedule live in .config, parse_names in ..datasets.
__all__ = [
    "Optimizer",
    "Schedule",
    "TrainConfig",
    "TrainEvent",
    "TrainResult",
    "init_checkpoint",
    "last_path",
    "parse_names",
    "train",
]


@dataclass
class TrainEvent:
    """Reported to the progress callback after every step.

    ``val`` holds the mean validation metrics on steps that validated (None
    otherwise, and on runs without validation images), and ``best`` says
    whether they were the best so far (and were saved).
    """

    step: int  # steps done, 1..steps
    steps: int
    loss: float
    lr: float
    elapsed_s: float  # seconds since this run (or resume) started its first step
    val: dict[str, float] | None = None
    best: bool = False
    start: int = 0  # steps done before this run: a resume's starting step

    @property
    def rate(self) -> float:
        """Steps per second in this run so far (validation time included)."""
        return (self.step - self.start) / max(self.elapsed_s, 1e-9)

    @property
    def eta_s(self) -> float:
        """Seconds left at :attr:`rate`."""
        return (self.steps - self.step) / max(self.rate, 1e-9)


@dataclass
class TrainResult:
    output: Path  # best checkpoint
    last: Path  # latest state, to resume from
    best_step: int
    best_metrics: dict[str, float]
    history: list[dict[str, Any]] = field(default_factory=list)
    parameters: int = 0
    elapsed_s: float = 0.0


_SHIPPED = "isbi2012-default"  # the one shipped model whose checkpoint a source checkout holds
_WHERE = f"the shipped {_SHIPPED} model's is export/{_SHIPPED}/checkpoint.pt in the source tree"


def init_checkpoint(init: str | Path) -> Path:
    """The checkpoint that ``train(init=...)`` starts from: a ``.pt`` file written by training.

    ``"isbi2012-default"`` and ``"nuclei"`` name the shipped models' checkpoints, found
    only in a source checkout (``export/NAME/checkpoint.pt``; the wheel ships
    the ONNX graph alone). Fine-tuning needs the trainable weights, which an
    exported ONNX graph or a bioimage.io package does not give back faithfully:
    those are refused, as is a missing file, saying where the checkpoint is.
    """
    path = Path(init)
    # the shipped models' checkpoints, by name, in a source checkout: export/NAME/checkpoint.pt
    if str(init) in (_SHIPPED, "nuclei") and not path.exists():
        path = Path(__file__).resolve().parents[2] / "export" / str(init) / "checkpoint.pt"
    if path.suffix.lower() in (".onnx", ".zip"):
        raise CheckpointError(
            f"cannot fine-tune from {path}: it is an exported inference graph, and training "
            f"starts from the checkpoint (.pt) it was exported from ({_WHERE})"
        )
    if not path.is_file():
        raise CheckpointError(
            f"cannot fine-tune from {init}: no file {path}; expected a checkpoint (.pt) "
            f"written by training ({_WHERE}, not in the installed package)"
        )
    return path


def last_path(output: str | Path) -> Path:
    """Where the latest (resumable) state is written next to ``output``."""
    output = Path(output)
    return output.with_name(f"{output.stem}.last{output.suffix or '.pt'}")


def predict_whole(model: UNet, image: np.ndarray, normalization: Normalization) -> np.ndarray:
    """Class probabilities float32 (classes, H, W) of a scaled image (H, W, C).

    Runs the runtime's kernel (:func:`unet_edge.kernel.build`) with one
    tile covering the whole image (its whole-image plan), mirror padding and
    all, with the PyTorch model as the predictor.
    """
    plan = tiling.whole_image_plan(image.shape[:2], model.geometry)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device

    def predict(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x = torch.from_numpy(batch).to(device)
            return torch.softmax(model(x), dim=1).cpu().numpy()

    def prepare(window: np.ndarray) -> np.ndarray:
        return normalize(window if window.ndim == 3 else window[:, :, None], normalization)

    try:
        c = model.config
        spec = kernel.Spec(normalization, c.in_channels, c.classes)
        read = tiling.array_reader(image)
        return kernel.build(spec, plan, read, None, prepare=prepare).run(predict)
    finally:
        model.train(was_training)


def validate(model: UNet, data: SegmentationData, normalization: Normalization) -> dict[str, float]:
    """Mean metrics (:func:`unet_edge.evaluate.segmentation_metrics`) over ``data``."""
    per = []
    for image, labels in zip(data.images, data.labels, strict=True):
        mask = predict_whole(model, image, normalization).argmax(0)
        per.append(segmentation_metrics(mask, labels))
    return mean_metrics(per)


def threshold_table(
    model: UNet,
    data: SegmentationData,
    normalization: Normalization,
    thresholds: Sequence[float],
    foreground: int = 1,
) -> list[dict[str, float]]:
    """Mean metrics over ``data`` when a pixel is ``foreground`` iff its probability > t.

    For two-class models. Returns one dictionary per threshold, with ``"threshold"``.
    """
    if model.config.classes != 2:
        raise ConfigError(f"threshold tables need a two-class model, got {model.config.classes}")
    probs = [predict_whole(model, im, normalization)[foreground] for im in data.images]
    table = []
    for t in thresholds:
        per = []
        for p, labels in zip(probs, data.labels, strict=True):
            mask = np.where(p > t, foreground, 1 - foreground).astype(np.uint8)
            per.append(segmentation_metrics(mask, labels))
        table.append({"threshold": float(t), **mean_metrics(per)})
    return table


def with_threshold(checkpoint: ckpt.Checkpoint, threshold: float) -> ckpt.Checkpoint:
    """A two-class checkpoint whose arg-max equals ``p(class 1) > threshold`` of the original.

    Adds ``log((1 - t) / t)`` to the class-1 bias of the 1x1 head, so the
    runtime (which takes the arg-max) needs no threshold of its own; its
    probabilities become those of the shifted logits. Recorded in
    ``training["threshold"]``.
    """
    if checkpoint.config.classes != 2:
        raise ConfigError(f"thresholds need a two-class model, got {checkpoint.config.classes}")
    if not 0.0 < threshold < 1.0:
        raise ConfigError(f"threshold must be in (0, 1), got {threshold}")
    state = {k: v.clone() for k, v in checkpoint.state_dict.items()}
    state["head.bias"][1] += math.log((1.0 - threshold) / threshold)
    training = {**checkpoint.training, "threshold": float(threshold)}
    return ckpt.Checkpoint(
        checkpoint.config,
        state,
        checkpoint.normalization,
        checkpoint.class_names,
        checkpoint.name,
        training,
        dict(checkpoint.metrics),
    )


def _is_better(metric: str, new: float, old: float | None) -> bool:
    if old is None:
        return True
    return new < old if metric in LOWER_IS_BETTER else new > old


def _learning_rate(config: TrainConfig, step: int) -> float:
    if config.schedule is Schedule.COSINE:
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * step / config.steps))
    return config.lr


def _split(config: TrainConfig, data_dir: str | Path) -> tuple[list[Any], list[Any]]:
    image_dir, label_dir = split_folder(data_dir)
    pairs = find_pairs(image_dir, label_dir)
    known = {p[0] for p in pairs}
    unknown = [n for n in (*config.val_names, *(config.train_names or ())) if n not in known]
    if unknown:
        raise DataError(
            f"split names {unknown[:10]} have no image in {image_dir} (it holds "
            f"{', '.join(sorted(known)[:10])}{' ...' if len(known) > 10 else ''})"
        )
    val = [p for p in pairs if p[0] in config.val_names]
    wanted = set(config.train_names) if config.train_names is not None else known
    train = [p for p in pairs if p[0] in wanted and p[0] not in config.val_names]
    if not train:
        raise DataError(f"no training images left in {image_dir} after holding out the val split")
    return train, val


def _make_optimizer(config: TrainConfig, model: UNet) -> torch.optim.Optimizer:
    if config.optimizer is Optimizer.SGD:
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    return torch.optim.Adam(model.parameters(), lr=config.lr)


def train(
    config: TrainConfig,
    data_dir: str | Path,
    output: str | Path,
    progress: Callable[[TrainEvent], None] | None = None,
    resume: str | Path | None = None,
    overwrite: bool = False,
    init: str | Path | None = None,
    device: str | TrainDevice = "cpu",
) -> TrainResult:
    """Train on ``data_dir`` (with ``image/`` and ``label/``); best weights to ``output``.

    ``resume`` continues from a checkpoint written by this function (the
    ``.last`` file, or the best one), with its weights, optimiser state,
    random states and history; ``config.steps`` may be raised to train longer.
    ``init`` starts a new run (fresh optimiser and schedule) from the weights of
    another checkpoint of the same architecture: fine-tuning, e.g. after a
    change of normalisation. Without validation names (``config.val_names`` empty) every checkpoint
    step overwrites ``output`` with the latest weights. An existing ``output``
    is refused before any work unless ``overwrite`` or ``resume`` is given.
    ``device``: ``"cpu"``, ``"cuda"`` (mixed precision) or ``"auto"``, or a
    :func:`~unet_edge.training.device.resolve` result (see that module).
    Returns a :class:`TrainResult`. Never prints; report through ``progress``.
    """
    output = Path(output)
    if not output.parent.is_dir():
        raise ConfigError(f"output folder {output.parent} does not exist; create it first")
    if output.exists() and not overwrite and resume is None:
        raise OutputExistsError(
            f"{output} exists and overwriting was not asked for (or resume from it to go on)",
            option="overwrite",
        )
    dev = resolve(device)
    train_pairs, val_pairs = _split(config, data_dir)
    if not config.training_data:  # record what was read, for the metadata and packages
        folder = Path(data_dir).resolve()
        config = replace(
            config,
            training_data=f"{len(train_pairs)} image/label pairs from the folder "
            f"{folder.parent.name}/{folder.name}",
        )
    init = None if init is None else init_checkpoint(init)
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _train(config, (train_pairs, val_pairs), output, progress, resume, init, dev)
    finally:
        torch.set_num_threads(threads)


def _same_architecture(path: str | Path, config: TrainConfig) -> ckpt.Checkpoint:
    state = ckpt.load(path)
    if state.config != config.architecture:
        raise CheckpointError(
            f"cannot start from {path}: its architecture {state.config} differs from "
            f"the requested {config.architecture}"
        )
    return state


@dataclass
class _Run:
    """One training run: its data, model and optimiser, and the state a resume restores."""

    config: TrainConfig
    data: SegmentationData
    val: SegmentationData | None
    geometry: Geometry
    augment: AugmentConfig
    model: UNet
    optimizer: torch.optim.Optimizer
    rng: np.random.Generator
    normalization: Normalization
    start: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_value: float | None = None
    best_step: int = 0
    best_metrics: dict[str, float] = field(default_factory=dict)
    elapsed_before: float = 0.0
    t0: float = 0.0
    device: TrainDevice = CPU
    scaler: torch.amp.GradScaler | None = None  # float16 autocast only
    image_dir: str = ""  # the training images' folder: export measures domain statistics there

    def elapsed(self) -> float:
        """Seconds trained, including those before a resume."""
        return self.elapsed_before + time.perf_counter() - self.t0


def _build(
    config: TrainConfig, train_pairs: Sequence[Any], val_pairs: Sequence[Any], device: TrainDevice
) -> _Run:
    """A fresh run: data, seeded model and optimiser (seeded in this order, as always)."""
    kw: dict[str, Any] = {
        "classes": config.classes,
        "scaling": config.scaling(),
        "labels": config.labels,
        "target": config.target,
        "border": config.border,
    }
    data = SegmentationData(train_pairs, **kw, w0=config.w0, sigma=config.sigma)
    val = SegmentationData(val_pairs, **kw, w0=0.0) if val_pairs else None
    geo = config.geometry
    augment = (
        AugmentConfig(elastic_sigma=config.elastic_sigma, exposure=config.exposure)
        if config.augment
        else AugmentConfig.none()
    )

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = UNet(config.architecture).to(device.torch_device)  # initialised on the CPU
    optimizer = _make_optimizer(config, model)
    run = _Run(config, data, val, geo, augment, model, optimizer, rng, data.normalization())
    run.device, run.scaler = device, device.grad_scaler()
    run.image_dir = str(Path(train_pairs[0][1]).resolve().parent)
    return run


def _restore(run: _Run, resume: str | Path | None, init: str | Path | None) -> None:
    """Load ``init``'s weights, or all that ``resume`` holds (weights, optimiser, rngs, history)."""
    if init is not None and resume is None:
        run.model.load_state_dict(_same_architecture(init, run.config).state_dict)
    if resume is None:
        return
    state = _same_architecture(resume, run.config)
    t = state.training
    if "optimizer" not in t or "step" not in t:
        raise CheckpointError(
            f"{resume} has no optimiser and random state to resume from; resume from the "
            f"{last_path(resume).name} file that `unet-edge train` writes next to it"
        )
    run.model.load_state_dict(state.state_dict)
    run.optimizer.load_state_dict(t["optimizer"])
    run.rng.bit_generator.state = t["numpy_rng"]
    torch.set_rng_state(t["torch_rng"])
    run.normalization = state.normalization
    run.start, run.history = int(t["step"]), list(t.get("history", []))
    run.best_value, run.best_step = t.get("best_value"), int(t.get("best_step", 0))
    run.best_metrics = dict(state.metrics)
    run.elapsed_before = float(t.get("elapsed_s", 0.0))
    if run.scaler is not None and "grad_scaler" in t:
        run.scaler.load_state_dict(t["grad_scaler"])


def _snapshot(run: _Run, step: int, metrics: dict[str, Any], resumable: bool) -> ckpt.Checkpoint:
    """The checkpoint of ``run`` now; ``resumable`` adds the optimiser and random states."""
    training: dict[str, Any] = {
        "step": step,
        "history": run.history,
        "best_value": run.best_value,
        "best_step": run.best_step,
        "elapsed_s": run.elapsed(),
        "config": run.config.to_dict(),
        "train_names": list(run.data.names),
        "image_dir": run.image_dir,
        "val_names": list(run.val.names) if run.val else [],
        **run.device.to_dict(),
    }
    if resumable:  # optimiser moments and random states: only in the .last file
        training["optimizer"] = run.optimizer.state_dict()
        training["numpy_rng"] = run.rng.bit_generator.state
        training["torch_rng"] = torch.get_rng_state()
        if run.scaler is not None:
            training["grad_scaler"] = run.scaler.state_dict()
    return ckpt.from_model(
        run.model, run.normalization, run.config.class_names, run.config.name, training, metrics
    )


def _step(run: _Run, step: int) -> TrainEvent:
    """One optimiser step (``step`` counts from 0) on a fresh batch; its event, not validated."""
    config = run.config
    lr = _learning_rate(config, step)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    samples = [
        run.data.sample(run.rng, run.geometry, config.tile, run.normalization, run.augment)
        for _ in range(config.batch_size)
    ]
    x, y, w = (
        torch.from_numpy(np.stack([getattr(s, k) for s in samples])).to(run.device.torch_device)
        for k in ("image", "labels", "weights")
    )
    with run.device.autocast():
        logits = run.model(x)
    loss = weighted_cross_entropy(logits.float(), y, w)  # the loss in float32
    run.optimizer.zero_grad(set_to_none=True)
    if run.scaler is None:
        loss.backward()
        run.optimizer.step()
    else:
        run.scaler.scale(loss).backward()
        run.scaler.step(run.optimizer)
        run.scaler.update()
    return TrainEvent(step + 1, config.steps, loss.item(), lr, time.perf_counter() - run.t0)


def _checkpoint(run: _Run, event: TrainEvent, output: Path, last: Path) -> None:
    """Validate after ``event``'s step, save the best and latest states, and fill in ``event``."""
    done, select = event.step, run.config.select
    metrics = validate(run.model, run.val, run.normalization) if run.val else {}
    value = metrics.get(select)
    is_best = value is None or _is_better(select, value, run.best_value)
    run.history.append({"step": done, "loss": event.loss, **metrics})
    if is_best:
        run.best_value, run.best_step, run.best_metrics = value, done, {"step": done, **metrics}
        ckpt.save(_snapshot(run, done, run.best_metrics, resumable=False), output)
    ckpt.save(_snapshot(run, done, run.best_metrics, resumable=True), last)
    # without validation images nothing was measured: no metrics, and no "best" to report
    event.val, event.best = (metrics, is_best) if metrics else (None, False)


def _train(
    config: TrainConfig,
    pairs: tuple[Sequence[Any], Sequence[Any]],
    output: Path,
    progress: Callable[[TrainEvent], None] | None,
    resume: str | Path | None,
    init: str | Path | None,
    device: TrainDevice,
) -> TrainResult:
    run = _build(config, *pairs, device)
    _restore(run, resume, init)
    run.model.train()
    run.t0 = time.perf_counter()
    last = last_path(output)
    for step in range(run.start, config.steps):
        event = _step(run, step)
        event.start = run.start
        if event.step % config.val_every == 0 or event.step == config.steps:
            _checkpoint(run, event, output, last)
        if progress is not None:
            progress(event)

    if not output.exists():  # resumed at or past the last step: nothing was written
        ckpt.save(_snapshot(run, run.start, run.best_metrics, resumable=False), output)
    return TrainResult(
        output=output,
        last=last,
        best_step=run.best_step,
        best_metrics=run.best_metrics,
        history=run.history,
        parameters=count_parameters(run.model),
        elapsed_s=run.elapsed(),
    )
