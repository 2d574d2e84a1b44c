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
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ..config import Normalization, NormMode, UNetConfig, look_up
from ..datasets import parse_names
from ..errors import ConfigError
from ..geometry import Geometry

__all__ = [
    "HIGHER_IS_BETTER",
    "LABEL_KINDS",
    "LOWER_IS_BETTER",
    "TARGETS",
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


#: What label files hold, and the class maps instance labels train (unet_edge.training.instances).
LABEL_KINDS = ("classes", "instances")
TARGETS = ("two-class", "three-class")

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
    # Probability of the camera gain/offset augmentation (AugmentConfig.exposure). Its offset is
    # a fraction of the dtype's full scale, right for EM slices that fill their range; for dim
    # fluorescence (12-bit in uint16, or a few hundred counts) a negative offset clips the whole
    # image to 0 while its labels still show objects: use 0.
    exposure: float = 0.5
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
    # What the label files hold: "classes" (class maps, 0/255 masks) or "instances" (an id per
    # object), which train ``target``'s classes (unet_edge.training.instances): "two-class"
    # (touching lines as background) or "three-class" (a border class, ``border`` px bands).
    labels: str = "classes"
    target: str = "two-class"
    border: float = 2.0
    # The object classes recorded in the exported metadata (what `label()` numbers); () = the
    # runtime's rule, except that instance labels name their object class (class 1) themselves.
    objects: tuple[str, ...] = ()
    # The images' pixel size in µm (None: unknown), exported into the model's metadata: the
    # runtime then resamples images of other pixel sizes to it (unet_edge.scale).
    pixel_size: float | None = None
    # How the exported model's mask is best made into objects, stated in its metadata
    # (output.labelling, which label() and `run --labels` follow): split touching objects
    # ("watershed") or not ("none"), and the smallest object kept ("10px", "2um2");
    # None: not stated. A three-class target also states its border class (given back).
    split: str | None = None
    min_size: str | None = None

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
        if not 0.0 <= self.exposure <= 1.0:
            raise ConfigError(f"exposure is a probability in [0, 1], got {self.exposure}")
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
        self._check_labels()
        self._check_pixel_size()

    def _check_pixel_size(self) -> None:
        v = self.pixel_size
        if v is not None and not (isinstance(v, (int, float)) and 1e-6 <= v <= 1e6):
            raise ConfigError(f"pixel size must be 1e-6..1e6 µm (e.g. 0.004), got {v!r}")

    def _check_labels(self) -> None:
        """The label kind, target and object classes agree with the classes."""
        object.__setattr__(self, "objects", tuple(self.objects))
        if self.labels not in LABEL_KINDS:
            raise ConfigError(
                f"unknown label kind {self.labels!r}; expected one of {', '.join(LABEL_KINDS)}"
            )
        if self.target not in TARGETS:
            raise ConfigError(f"unknown target {self.target!r}; expected {', '.join(TARGETS)}")
        if self.labels == "instances":
            wanted = 2 if self.target == "two-class" else 3
            if self.classes != wanted:
                raise ConfigError(
                    f"instance labels with the {self.target} target train {wanted} classes, "
                    f"got {self.classes} class names {list(self.class_names)}; name {wanted}"
                )
            if not self.border > 0:
                raise ConfigError(f"border width must be > 0 px, got {self.border}")
            if not self.objects:
                object.__setattr__(self, "objects", (self.class_names[1],))
        unknown = [c for c in self.objects if c not in self.class_names]
        if unknown:
            raise ConfigError(f"object class {unknown[0]!r} is not one of {list(self.class_names)}")
        self._check_labelling()

    def _check_labelling(self) -> None:
        """``split`` one of watershed/none and ``min_size`` a size, or ConfigError."""
        if self.split is not None and self.split not in ("watershed", "none"):
            raise ConfigError(f"split must be 'watershed' or 'none', got {self.split!r}")
        if self.min_size is not None:
            from ..errors import InputError
            from ..objects.labels import MinSize

            try:
                MinSize.parse(self.min_size)
            except InputError as e:  # "ten", "-3px"
                raise ConfigError(str(e)) from None

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
        d["objects"] = list(self.objects)
        return d


def stated_labelling(config: Mapping[str, Any]) -> dict[str, str]:
    """The ``output.labelling`` a model exported from a run of ``config`` (a
    :meth:`TrainConfig.to_dict`, possibly of an older version) states: its ``split`` and
    ``min_size``, and a three-class target's border class ({}: nothing stated)."""
    rule = {k: str(config[k]) for k in ("split", "min_size") if config.get(k)}
    if config.get("labels") == "instances" and config.get("target") == "three-class":
        rule["border"] = str(config["class_names"][2])
    return rule


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
