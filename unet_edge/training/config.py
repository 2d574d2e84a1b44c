"""The training configuration and its defaults: the shipped model's recipe. Torch-free.

:class:`TrainConfig` is the one source of the training defaults: the
``unet-edge train`` options read theirs from its fields, and the recipe of the
shipped model (``export/isbi2012-default/train.py``) is ``TrainConfig()`` plus
its validation split and name. The defaults are that recipe's first command:
base width 16, depth 4, 444-px tiles, Adam at lr 5e-4 with cosine decay over
3000 steps, seed 2012, validation every 250 steps (the shipped weights were
then trained on to 6000 steps with ``--resume``; see its MODEL_CARD.md).

This module imports neither torch nor the training code, so the CLI can build
its options (and validate a config) without the ``[train]`` extra.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import Any

from ..config import Normalization, NormMode, UNetConfig, look_up
from ..datasets import parse_names
from ..errors import ConfigError
from ..geometry import Geometry

__all__ = [
    "HIGHER_IS_BETTER",
    "LOWER_IS_BETTER",
    "Optimizer",
    "Schedule",
    "TrainConfig",
    "class_names_for",
    "parse_names",
]


class Optimizer(str, enum.Enum):
    SGD = "sgd"  # the paper: momentum 0.99, batch 1, large tiles
    ADAM = "adam"


class Schedule(str, enum.Enum):
    CONSTANT = "constant"
    COSINE = "cosine"  # lr * (1 + cos(pi * step / steps)) / 2


# Validation metrics (unet_edge.evaluate.segmentation_metrics) that may select the best checkpoint.
LOWER_IS_BETTER = ("pixel_error", "rand_error", "rand_error_expanded", "vi", "vi_expanded")
HIGHER_IS_BETTER = ("iou", "dice")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (with the data and the seed).

    The defaults are the shipped ``isbi2012-default`` model's recipe. Strings
    are accepted for ``optimizer`` and ``schedule``; sequences become tuples.
    Raises :class:`ConfigError` on an invalid value, naming it.
    """

    width: int = 16  # feature maps at the top level
    depth: int = 4
    tile: int = 444  # input tile (legal size); the loss sees its central output
    steps: int = 3000
    lr: float = 5e-4
    optimizer: Optimizer = Optimizer.ADAM
    momentum: float = 0.99  # SGD only
    schedule: Schedule = Schedule.COSINE
    batch_size: int = 1
    val_names: tuple[str, ...] = ()  # file names (no extension) held out for validation
    train_names: tuple[str, ...] | None = None  # None: every image not in val_names
    seed: int = 2012
    val_every: int = 250
    threads: int = 2
    classes: int = 2
    class_names: tuple[str, ...] = ("membrane", "cell")
    w0: float = 10.0
    sigma: float = 5.0
    augment: bool = True
    elastic_sigma: float = 10.0
    # Per-image percentile normalisation: the norm_low-th and norm_high-th percentiles of each
    # image map to 0 and 1, clipped to 0..1 with norm_clip. EM slices are mostly bright
    # cytoplasm: with the 5th and 70th percentiles, clipped, a camera gain or offset that
    # saturates up to 30% of the pixels leaves the network's input unchanged (membranes are
    # the dark pixels). For sparse bright objects (fluorescence) use 1 and 99.8.
    norm_low: float = 5.0
    norm_high: float = 70.0
    norm_clip: bool = True
    select: str = "rand_error_expanded"  # validation metric that picks the best checkpoint
    name: str = "unet"
    # What the images are, in words, for the model's metadata and its bioimage.io package;
    # "" lets :func:`unet_edge.training.loop.train` record the data folder it read.
    training_data: str = ""

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
        self.scaling()  # validates norm_low < norm_high in 0..100
        if self.classes < 2 or len(set(self.class_names)) != len(self.class_names):
            raise ConfigError(
                f"class names {list(self.class_names)} for {self.classes} classes; a U-Net "
                "needs at least 2 classes with distinct names (e.g. background,cell)"
            )
        if not all(n.strip() for n in self.class_names):
            raise ConfigError(f"empty class name in {list(self.class_names)}; name every class")
        if len(self.class_names) != self.classes:
            raise ConfigError(
                f"{len(self.class_names)} class names {list(self.class_names)} for "
                f"{self.classes} classes; give one name per class"
            )
        overlap = set(self.val_names) & set(self.train_names or ())
        if overlap:
            raise ConfigError(f"images {sorted(overlap)} are in both the training and val split")
        if self.select not in (*LOWER_IS_BETTER, *HIGHER_IS_BETTER):
            raise ConfigError(
                f"unknown selection metric {self.select!r}; expected one of "
                f"{', '.join((*LOWER_IS_BETTER, *HIGHER_IS_BETTER))}"
            )
        self.geometry.check_tile(self.tile)

    def scaling(self) -> Normalization:
        """How each training image is scaled (mean and std are measured on the data)."""
        return Normalization(
            mode=NormMode.PERCENTILE, low=self.norm_low, high=self.norm_high, clip=self.norm_clip
        )

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


def class_names_for(text: str | None) -> dict[str, Any]:
    """``classes`` and ``class_names`` (TrainConfig fields) from ``"NAME,NAME,..."``.

    ``None`` or ``""``: ``{}``, the defaults (membrane, cell). Raises
    :class:`ConfigError` for fewer than two names or a repeated one.
    """
    if not text:
        return {}
    names = tuple(n.strip() for n in text.split(","))
    if len(names) < 2 or len(set(names)) != len(names) or not all(names):
        raise ConfigError(
            f"class names {text!r}: expected two or more distinct comma-separated names, one "
            "per label value in order (0 first), e.g. background,cell"
        )
    return {"classes": len(names), "class_names": names}
