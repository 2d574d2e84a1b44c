"""The one place a kernel is built: a model's prepare step joined to a tile plan and a reader.

Every path that turns pixels into probabilities (the Segmenter's frames,
the stream, the windowed and Dask drivers, the benchmark's timed frame, int8
calibration, validation during training, napari's progress) builds its
:class:`~unet_edge.tiling.TileRun` here, so that they cannot drift apart:

- :func:`prepare_frames` turns what a caller passed (a frame, a stack, a
  list of frames) into frames and the scaling of each, in one call (the one
  stack rule, the shape check, the per-frame statistics);
- :func:`build` joins a plan, a window reader and a scaling (or a prepare
  step of the caller's, for training's already scaled images) into the kernel;
- :func:`for_frame` is :func:`build` for one in-memory frame.

The runtime half never imports torch: a PyTorch predictor is just a callable
given to :meth:`TileRun.run <unet_edge.tiling.TileRun.run>`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from . import processing, tiling
from .config import Normalization
from .errors import InputError
from .processing import Scaling

Prepare = Callable[[np.ndarray], np.ndarray]
"""The kernel's prepare step: a raw (h, w[, C]) window -> float32 (C, h, w)."""

Wrap = Callable[[str, Callable[..., Any]], Callable[..., Any]]
"""``wrap(stage, fn) -> fn``: put something (a clock) around the reader ("tile") or the
prepare step ("normalise"); the bench uses it to time the kernel's stages."""


class KernelModel(Protocol):
    """What the kernel needs of a model: :class:`~unet_edge.metadata.ModelInfo` has it."""

    @property
    def normalization(self) -> Normalization: ...

    @property
    def channels(self) -> int: ...

    @property
    def classes(self) -> int: ...


@dataclass(frozen=True)
class Spec:
    """A :class:`KernelModel` for callers without a :class:`~unet_edge.metadata.ModelInfo`
    (training validates a PyTorch model before it has an ONNX file)."""

    normalization: Normalization
    channels: int
    classes: int


def build(
    model: KernelModel,
    plan: tiling.TilePlan,
    read: tiling.WindowReader,
    scaling: Scaling | None,
    *,
    batch_size: int = 1,
    region: tiling.Region | None = None,
    prepare: Prepare | None = None,
    wrap: Wrap | None = None,
) -> tiling.TileRun:
    """The kernel for ``region`` (None: all) of the image behind ``read``.

    Windows are normalised per ``model.normalization`` with ``scaling`` (the
    whole image's, from :func:`unet_edge.processing.scaling_for`), unless
    ``prepare`` is given (then ``scaling`` is unused and may be None).
    """
    if prepare is None:
        if scaling is None:
            raise InputError("the kernel needs the image's scaling or a prepare step; got neither")
        prepare = processing.normalizer(model.normalization, model.channels, scaling)
    if wrap is not None:
        read, prepare = wrap("tile", read), wrap("normalise", prepare)
    return tiling.TileRun(plan, read, prepare, model.classes, batch_size, region)


def prepare_frames(
    image: Any, model: KernelModel, input_range: tuple[float, float] | None = None
) -> tuple[list[tuple[np.ndarray, Scaling]], bool]:
    """Frames of ``image`` (a frame, a stack or a list of frames) each with its scaling,
    and whether it was a stack: the one call that gets a caller's input ready for kernels.

    Each frame is checked against the model's channels and scaled on its own
    statistics (like the frames of a stream); ``input_range`` is the
    camera's range for fixed-range models.
    """
    frames, stack = processing.as_frames(image, model.channels)
    out = []
    for frame in frames:
        processing.frame_to_chw(frame, model.channels)  # the shape check, before any statistics
        out.append(
            (frame, processing.scaling_for(frame, model.normalization, model.channels, input_range))
        )
    return out, stack


def for_frame(
    model: KernelModel,
    frame: np.ndarray,
    plan: tiling.TilePlan,
    scaling: Scaling,
    *,
    batch_size: int = 1,
    wrap: Wrap | None = None,
) -> tiling.TileRun:
    """:func:`build` for one in-memory (H, W) or (H, W, C) frame (its windows mirrored)."""
    return build(model, plan, tiling.array_reader(frame), scaling, batch_size=batch_size, wrap=wrap)
