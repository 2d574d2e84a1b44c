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

import enum
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from ..config import Normalization, UNetConfig, look_up
from ..errors import CheckpointError, ConfigError, DataError, OutputExistsError
from ..evaluate import find_pairs, mean_metrics, parse_names, segmentation_metrics, split_folder
from ..geometry import Geometry
from . import checkpoint as ckpt
from .augment import AugmentConfig
from .data import SegmentationData, normalize
from .loss import weighted_cross_entropy
from .model import UNet, count_parameters

__all__ = ["TrainConfig", "TrainEvent", "TrainResult", "last_path", "parse_names", "train"]


class Optimizer(str, enum.Enum):
    SGD = "sgd"  # the paper: momentum 0.99, batch 1, large tiles
    ADAM = "adam"


class Schedule(str, enum.Enum):
    CONSTANT = "constant"
    COSINE = "cosine"  # lr * (1 + cos(pi * step / steps)) / 2


LOWER_IS_BETTER = ("pixel_error", "rand_error", "rand_error_expanded", "vi", "vi_expanded")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (with the data and the seed)."""

    width: int = 16  # feature maps at the top level
    depth: int = 4
    tile: int = 444  # input tile (legal size); the loss sees its central output
    steps: int = 6000
    lr: float = 1e-3
    optimizer: Optimizer = Optimizer.ADAM
    momentum: float = 0.99  # SGD only
    schedule: Schedule = Schedule.COSINE
    batch_size: int = 1
    val_names: tuple[str, ...] = ()  # file names (no extension) held out for validation
    train_names: tuple[str, ...] | None = None  # None: every image not in val_names
    seed: int = 0
    val_every: int = 250
    threads: int = 2
    classes: int = 2
    class_names: tuple[str, ...] = ("membrane", "cell")
    w0: float = 10.0
    sigma: float = 5.0
    augment: bool = True
    elastic_sigma: float = 10.0
    select: str = "rand_error_expanded"  # validation metric that picks the best checkpoint
    name: str = "unet"

    def __post_init__(self) -> None:
        object.__setattr__(self, "optimizer", look_up(Optimizer, self.optimizer, "optimizer"))
        object.__setattr__(self, "schedule", look_up(Schedule, self.schedule, "lr schedule"))
        object.__setattr__(self, "val_names", tuple(self.val_names))
        object.__setattr__(self, "class_names", tuple(self.class_names))
        if self.train_names is not None:
            object.__setattr__(self, "train_names", tuple(self.train_names))
        for name in ("width", "steps", "batch_size", "val_every", "threads"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if not self.lr > 0:
            raise ConfigError(f"learning rate must be > 0, got {self.lr}")
        if len(self.class_names) != self.classes:
            raise ConfigError(
                f"{len(self.class_names)} class names {list(self.class_names)} for "
                f"{self.classes} classes; give one name per class"
            )
        overlap = set(self.val_names) & set(self.train_names or ())
        if overlap:
            raise ConfigError(f"images {sorted(overlap)} are in both the training and val split")
        if self.select not in (*LOWER_IS_BETTER, "iou", "dice"):
            raise ConfigError(
                f"unknown selection metric {self.select!r}; expected one of "
                f"{', '.join((*LOWER_IS_BETTER, 'iou', 'dice'))}"
            )
        self.geometry.check_tile(self.tile)

    @property
    def architecture(self) -> UNetConfig:
        return UNetConfig(classes=self.classes, depth=self.depth, base_width=self.width)

    @property
    def geometry(self) -> Geometry:
        return Geometry(self.depth)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["optimizer"] = self.optimizer.value
        d["schedule"] = self.schedule.value
        d["val_names"] = list(self.val_names)
        d["class_names"] = list(self.class_names)
        d["train_names"] = None if self.train_names is None else list(self.train_names)
        return d


@dataclass
class TrainEvent:
    """Reported to the progress callback after every step.

    ``val`` holds the mean validation metrics on steps that validated, and
    ``best`` says whether they were the best so far (and were saved).
    """

    step: int  # steps done, 1..steps
    steps: int
    loss: float
    lr: float
    elapsed_s: float
    val: dict[str, float] | None = None
    best: bool = False


@dataclass
class TrainResult:
    output: Path  # best checkpoint
    last: Path  # latest state, for --resume
    best_step: int
    best_metrics: dict[str, float]
    history: list[dict[str, Any]] = field(default_factory=list)
    parameters: int = 0
    elapsed_s: float = 0.0


def last_path(output: str | Path) -> Path:
    """Where the latest (resumable) state is written next to ``output``."""
    output = Path(output)
    return output.with_name(f"{output.stem}.last{output.suffix or '.pt'}")


def predict_whole(model: UNet, image: np.ndarray, normalization: Normalization) -> np.ndarray:
    """Class probabilities float32 (classes, H, W) of a [0, 1]-scaled image (H, W, C).

    The image is mirror-padded (``cv2.BORDER_REFLECT``) so that its origin is
    at (halo, halo) of the smallest legal input covering it, as the runtime's
    whole-image inference does, then run in one piece.
    """
    geo = model.geometry
    h, w = image.shape[:2]
    th, tw = geo.input_for_output(h), geo.input_for_output(w)
    halo = geo.halo
    padded = cv2.copyMakeBorder(image, halo, th - h - halo, halo, tw - w - halo, cv2.BORDER_REFLECT)
    if padded.ndim == 2:
        padded = padded[:, :, None]
    x = torch.from_numpy(normalize(padded, normalization))[None]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        probs = torch.softmax(model(x), dim=1)[0, :, :h, :w]
    model.train(was_training)
    return probs.numpy().astype(np.float32)


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
) -> TrainResult:
    """Train on ``data_dir`` (with ``image/`` and ``label/``); best weights to ``output``.

    ``resume`` continues from a checkpoint written by this function (the
    ``.last`` file, or the best one), with its weights, optimiser state,
    random states and history; ``config.steps`` may be raised to train longer.
    Without validation names (``config.val_names`` empty) every checkpoint
    step overwrites ``output`` with the latest weights. An existing ``output``
    is refused before any work unless ``overwrite`` or ``resume`` is given.
    Returns a :class:`TrainResult`. Never prints; report through ``progress``.
    """
    output = Path(output)
    if not output.parent.is_dir():
        raise ConfigError(f"output folder {output.parent} does not exist; create it first")
    if output.exists() and not overwrite and resume is None:
        raise OutputExistsError(
            f"{output} exists; pass --overwrite to replace it or --resume to continue from it"
        )
    train_pairs, val_pairs = _split(config, data_dir)
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _train(config, train_pairs, val_pairs, output, progress, resume)
    finally:
        torch.set_num_threads(threads)


def _train(
    config: TrainConfig,
    train_pairs: Sequence[Any],
    val_pairs: Sequence[Any],
    output: Path,
    progress: Callable[[TrainEvent], None] | None,
    resume: str | Path | None,
) -> TrainResult:
    kw: dict[str, Any] = {"classes": config.classes, "w0": config.w0, "sigma": config.sigma}
    data = SegmentationData(train_pairs, **kw)
    val = SegmentationData(val_pairs, classes=config.classes, w0=0.0) if val_pairs else None
    geo = config.geometry
    augment = (
        AugmentConfig(elastic_sigma=config.elastic_sigma)
        if config.augment
        else AugmentConfig.none()
    )

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = UNet(config.architecture)
    optimizer = _make_optimizer(config, model)
    normalization = data.normalization()
    start, history, best_value, best_step, best_metrics = 0, [], None, 0, {}
    elapsed_before = 0.0
    if resume is not None:
        state = ckpt.load(resume)
        if state.config != config.architecture:
            raise CheckpointError(
                f"cannot resume from {resume}: its architecture {state.config} differs from "
                f"the requested {config.architecture}"
            )
        t = state.training
        if "optimizer" not in t or "step" not in t:
            raise CheckpointError(
                f"{resume} has no optimiser and random state to resume from; resume from the "
                f"{last_path(resume).name} file that `unet-edge train` writes next to it"
            )
        model.load_state_dict(state.state_dict)
        optimizer.load_state_dict(t["optimizer"])
        rng.bit_generator.state = t["numpy_rng"]
        torch.set_rng_state(t["torch_rng"])
        normalization = state.normalization
        start, history = int(t["step"]), list(t.get("history", []))
        best_value, best_step = t.get("best_value"), int(t.get("best_step", 0))
        best_metrics = dict(state.metrics)
        elapsed_before = float(t.get("elapsed_s", 0.0))

    model.train()
    t0 = time.perf_counter()
    last = last_path(output)

    def snapshot(step: int, metrics: dict[str, Any], resumable: bool) -> ckpt.Checkpoint:
        training: dict[str, Any] = {
            "step": step,
            "history": history,
            "best_value": best_value,
            "best_step": best_step,
            "elapsed_s": elapsed_before + time.perf_counter() - t0,
            "config": config.to_dict(),
            "train_names": list(data.names),
            "val_names": list(val.names) if val else [],
        }
        if resumable:  # optimiser moments and random states: only in the .last file
            training["optimizer"] = optimizer.state_dict()
            training["numpy_rng"] = rng.bit_generator.state
            training["torch_rng"] = torch.get_rng_state()
        return ckpt.from_model(
            model, normalization, config.class_names, config.name, training, metrics
        )

    for step in range(start, config.steps):
        lr = _learning_rate(config, step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        samples = [
            data.sample(rng, geo, config.tile, normalization, augment)
            for _ in range(config.batch_size)
        ]
        x = torch.from_numpy(np.stack([s.image for s in samples]))
        y = torch.from_numpy(np.stack([s.labels for s in samples]))
        w = torch.from_numpy(np.stack([s.weights for s in samples]))
        loss = weighted_cross_entropy(model(x), y, w)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        done = step + 1
        event = TrainEvent(done, config.steps, loss.item(), lr, time.perf_counter() - t0)
        if done % config.val_every == 0 or done == config.steps:
            metrics = validate(model, val, normalization) if val else {}
            value = metrics.get(config.select)
            is_best = value is None or _is_better(config.select, value, best_value)
            history.append({"step": done, "loss": event.loss, **metrics})
            if is_best:
                best_value, best_step, best_metrics = value, done, {"step": done, **metrics}
                ckpt.save(snapshot(done, best_metrics, resumable=False), output)
            ckpt.save(snapshot(done, best_metrics, resumable=True), last)
            event.val, event.best = metrics, is_best
        if progress is not None:
            progress(event)

    if not output.exists():  # resumed at or past the last step: nothing was written
        ckpt.save(snapshot(start, best_metrics, resumable=False), output)
    return TrainResult(
        output=output,
        last=last,
        best_step=best_step,
        best_metrics=best_metrics,
        history=history,
        parameters=count_parameters(model),
        elapsed_s=elapsed_before + time.perf_counter() - t0,
    )
