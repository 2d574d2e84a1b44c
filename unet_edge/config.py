"""Frozen configuration objects and the enums that name modes.

Everything here is plain data (no numpy arrays, no torch) so that it can be
written to checkpoints and to ONNX metadata as JSON and read back unchanged.
"""

from __future__ import annotations

import difflib
import enum
import math
import numbers
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from .errors import ConfigError

_E = TypeVar("_E", bound=enum.Enum)

#: Upper bounds of the architecture's integers: far above any real U-Net, low enough that a
#: crafted model's metadata cannot make the size arithmetic (or a mask's uint8) misbehave.
LIMITS = {"in_channels": 64, "classes": 256, "base_width": 4096, "convs_per_level": 8}

#: Normalisation numbers are finite and of sane size; std at least this (x / std stays finite).
MAX_NORM_VALUE = 1e12
MIN_NORM_STD = 1e-8


def look_up(kind: type[_E], value: object, what: str | None = None) -> _E:
    """Resolve ``value`` (an enum member or its string value) to a member of ``kind``.

    A typo raises :class:`ConfigError` naming the closest valid spelling.
    """
    if isinstance(value, kind):
        return value
    name = what or kind.__name__
    choices = [str(m.value) for m in kind]
    if isinstance(value, str):
        key = value.strip().lower()
        for member in kind:
            if str(member.value) == key:
                return member
        close = difflib.get_close_matches(key, choices, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown {name} {value!r}; expected one of {', '.join(choices)}.{hint}")
    raise ConfigError(
        f"{name} must be a string, got {type(value).__name__}; expected one of {', '.join(choices)}"
    )


def plain_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as JSON-ready data: fields by name, enum members by their value."""
    return {k: v.value if isinstance(v, enum.Enum) else v for k, v in asdict(obj).items()}


class Padding(str, enum.Enum):
    """Convolution padding of the network."""

    VALID = "valid"  # the paper: each 3x3 convolution shrinks the map by 2 px
    SAME = "same"  # zero-padded convolutions, output as large as input


class BorderMode(str, enum.Enum):
    """How the image is extended beyond its edges before tiling.

    Only one convention is used across the project (in-memory, streamed and
    Dask paths): ``symmetric`` mirrors with the edge pixel repeated, which is
    ``cv2.BORDER_REFLECT`` == ``numpy.pad(mode="symmetric")`` ==
    ``dask.array.map_overlap(boundary="reflect")``. Unlike reflect-101 it is
    defined for 1-pixel-wide images.
    """

    SYMMETRIC = "symmetric"


class NormMode(str, enum.Enum):
    """How raw pixel values are mapped to the network's input range."""

    DTYPE_RANGE = "dtype_range"  # divide by the dtype's maximum (255, 65535); floats as given
    FIXED_RANGE = "fixed_range"  # (x - low) / (high - low) with the model's low/high
    PERCENTILE = "percentile"  # per image: low/high percentiles mapped to 0..1


class OutputFormat(str, enum.Enum):
    """How TIFF results are written (:func:`unet_edge.segment_file`)."""

    TIFF = "tiff"  # ImageJ hyperstack: axes, pixel size; ImageJ 1.x, Fiji, napari, tifffile
    OME_TIFF = "ome-tiff"  # OME-TIFF (NAME_*.ome.tif) for Bio-Formats, OMERO, QuPath


class DropPolicy(str, enum.Enum):
    """What a stream does when frames come faster than the model (:mod:`unet_edge.paths.stream`)."""

    OLDEST = "oldest"  # discard the oldest waiting frame: bounded latency, frames may be lost
    NONE = "none"  # wait: every frame is processed, latency grows if the source is faster


class Precision(str, enum.Enum):
    """Numeric precision of an exported graph."""

    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"


class ComputePrecision(str, enum.Enum):
    """Arithmetic a provider may use for a graph's float parts (not the graph's own precision)."""

    FP32 = "fp32"  # float32 throughout: OpenVINO is told INFERENCE_PRECISION_HINT=f32
    BF16 = "bf16"  # bfloat16 (OpenVINO on CPUs with AVX512-BF16 or AMX): faster, classes may change


@dataclass(frozen=True)
class Normalization:
    """Input normalisation, applied per channel after conversion to float32.

    ``x = (scale(raw) - mean) / std`` where ``scale`` depends on ``mode``:
    ``dtype_range`` divides integers by their dtype's maximum; ``fixed_range``
    maps ``[low, high]`` to ``[0, 1]``; ``percentile`` maps the image's
    ``low``-th and ``high``-th percentiles to ``[0, 1]``. With ``clip`` the
    scaled values are clipped to ``[0, 1]``.
    """

    mode: NormMode = NormMode.DTYPE_RANGE
    low: float = 0.0
    high: float = 1.0
    mean: float = 0.0
    std: float = 1.0
    clip: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", look_up(NormMode, self.mode, "normalisation mode"))
        for name in ("low", "high", "mean", "std"):
            v = getattr(self, name)
            ok = isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
            if not ok or abs(v) > MAX_NORM_VALUE:
                raise ConfigError(
                    f"normalisation {name} must be a finite number within +-{MAX_NORM_VALUE:g}, "
                    f"got {v!r}"
                )
        if not isinstance(self.clip, bool):
            raise ConfigError(f"normalisation clip must be true or false, got {self.clip!r}")
        if not self.std >= MIN_NORM_STD:
            raise ConfigError(
                f"normalisation std must be > 0 (at least {MIN_NORM_STD:g}), got {self.std}"
            )
        if self.mode is not NormMode.DTYPE_RANGE and not self.high > self.low:
            raise ConfigError(
                f"normalisation needs high > low, got low={self.low}, high={self.high}"
            )
        if self.mode is NormMode.PERCENTILE and not (0 <= self.low < self.high <= 100):
            raise ConfigError(
                "percentile normalisation needs 0 <= low < high <= 100, "
                f"got {self.low}, {self.high}"
            )

    def to_dict(self) -> dict[str, Any]:
        return plain_dict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normalization:
        return cls(**d)


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of a U-Net. The defaults are the paper's network.

    ``depth`` is the number of 2x2 max-pools; ``base_width`` the number of
    feature maps at the top level (doubled at each level below).
    """

    in_channels: int = 1
    classes: int = 2
    depth: int = 4
    base_width: int = 64
    padding: Padding = Padding.VALID
    batch_norm: bool = False
    dropout: float = 0.0
    convs_per_level: int = 2
    kernel_size: int = 3
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "padding", look_up(Padding, self.padding, "padding"))
        for name, most in LIMITS.items():
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= most:
                raise ConfigError(f"{name} must be an integer in 1..{most}, got {v!r}")
        if self.classes < 2:
            raise ConfigError(
                f"classes must be >= 2 (softmax over classes), got {self.classes}; "
                "use 2 for foreground/background"
            )
        if type(self.depth) is not int or not 0 <= self.depth <= 8:
            raise ConfigError(f"depth must be an integer in 0..8, got {self.depth!r}")
        if type(self.kernel_size) is not int or self.kernel_size not in (3, 5, 7):
            raise ConfigError(f"kernel_size must be 3, 5 or 7, got {self.kernel_size!r}")
        if not isinstance(self.batch_norm, bool):
            raise ConfigError(f"batch_norm must be true or false, got {self.batch_norm!r}")
        if not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not isinstance(self.extra, dict):
            raise ConfigError(f"extra must be a mapping, got {type(self.extra).__name__}")

    def to_dict(self) -> dict[str, Any]:
        return plain_dict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UNetConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(
                f"unknown architecture keys {unknown}; expected a subset of {sorted(known)}"
            )
        return cls(**d)
