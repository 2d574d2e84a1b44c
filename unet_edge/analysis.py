"""How a Segmenter analyses an in-memory image: the channel picked, the frames, the model's
grid, the tile plan, one kernel per frame, and the :class:`~unet_edge.prediction.Prediction`.

The body of :meth:`unet_edge.Segmenter.analyze_steps`, apart from the object that owns
the engine session. A channel (or colour) is picked of an array as files pick it
(:func:`unet_edge.io.axes.layout`, same rule, same errors): the array's last axis is its
channels, as everywhere in the Segmenter's API, so ``(H, W, C)`` is one frame,
``(Z, H, W, C)`` a stack, and a list of ``(H, W, C)`` frames a stack of frames.
"""

from __future__ import annotations

import functools
from collections.abc import Generator, Sequence
from numbers import Integral
from typing import TYPE_CHECKING, Any

import numpy as np

from . import cost, processing, scale, tiling
from .engines.options import check_int
from .errors import InputError
from .geometry import Geometry, TileGeometry
from .io import axes as io_axes
from .prediction import Prediction

if TYPE_CHECKING:
    from .runtime import Segmenter

__all__ = ["analyze_steps", "check_channel", "check_tiling", "new_plan", "pick_channel"]

#: The axes of an array whose last axis is its channels, by its number of axes.
_CHANNELS_LAST = {2: "YX", 3: "YXC", 4: "ZYXC"}


def check_channel(channel: Any, channels: int) -> int | None:
    """``channel`` as an int (None: none picked), for a ``channels``-channel model.

    Raises :class:`~unet_edge.InputError` (``option="channel"``) for what is not a
    whole number of at least 0, or any channel picked for a multi-channel model (it
    uses all of an image's channels); whether the image has it is known per image.
    """
    if channel is None:
        return None
    if isinstance(channel, bool) or not isinstance(channel, Integral) or channel < 0:
        raise InputError(
            f"channel must be a whole number, 0 for the first, got {channel!r}", option="channel"
        )
    if channels != 1:
        raise InputError(
            f"channel {channel} was picked, but the model takes {channels} channels and uses "
            "all of an image's; picking one is for 1-channel models",
            option="channel",
        )
    return int(channel)


def pick_channel(image: Any, channel: int | None, channels: int, default: int | None = None) -> Any:
    """``image`` (what :meth:`Segmenter.analyze` takes) with only channel ``channel`` of its
    last axis: ``(H, W, C)`` -> ``(H, W)``, ``(Z, H, W, C)`` -> ``Z`` frames, a list of
    ``(H, W, C)`` frames -> a list of ``(H, W)``; an ``(H, W)`` frame has one channel, 0.

    Views, never copies. ``channel`` None: ``default`` (the Segmenter's); both None:
    the image unchanged. An :class:`unet_edge.io.axes.Arranged` gives its frames as they
    are (its channel was picked when it was arranged; ``default`` is not applied).
    Raises :class:`~unet_edge.InputError` as a file with those axes would
    (:func:`unet_edge.io.axes.layout`: a channel that is not there, a multi-channel
    model) and for an array whose last axis is longer than its image is high or
    wide (channels first, ``(C, H, W)``, or a ``(Z, H, W)`` stack: not channels).
    """
    if isinstance(image, io_axes.Arranged):
        if channel is not None and channel != image.layout.channel:
            raise InputError(
                f"channel {channel} was picked, but the frames were arranged with channel "
                f"{image.layout.channel}; arrange them again with the channel to segment",
                option="channel",
            )
        return image.input
    channel = default if channel is None else channel
    if channel is None:
        return image
    if isinstance(image, (list, tuple)) and image and all(isinstance(f, np.ndarray) for f in image):
        return [_picked(f, channel, channels, frame=True) for f in image]
    return _picked(processing.as_image(image), channel, channels, frame=False)


def _picked(image: Any, channel: int, channels: int, *, frame: bool) -> Any:
    """One array (a frame of a list when ``frame``) with only ``channel`` of its last axis."""
    shape = tuple(int(n) for n in np.shape(image))
    axes = _CHANNELS_LAST.get(len(shape), "") if not frame or len(shape) < 4 else ""
    if not axes:
        what = "(H, W) or (H, W, C) frames" if frame else "(H, W), (H, W, C) or (Z, H, W, C)"
        raise InputError(
            f"channel {channel} was picked of an array of shape {shape}, but with a channel "
            f"picked the Segmenter takes {what}, channels last",
            option="channel",
        )
    if "C" in axes and shape[-1] > min(shape[-3:-1]):
        raise InputError(
            f"channel {channel} was picked of an array of shape {shape}, whose last axis "
            f"(channels, read as (..., H, W, C)) has {shape[-1]} entries, more than the "
            f"image's height or width; put the channels last (numpy.moveaxis(image, 0, -1) "
            "for (C, H, W)), or give a (Z, H, W) stack with no channel",
            option="channel",
        )
    return io_axes.arrange_array(np.asarray(image), axes, channels, channel).input


def analyze_steps(
    seg: Segmenter, image: Any, pixel_size: Any = None, channel: int | None = None
) -> Generator[tuple[int, int], None, Prediction]:
    """:meth:`Segmenter.analyze_steps` of ``seg``: ``channel`` (None: ``seg.channel``) picked
    (:func:`pick_channel`); yields ``(tiles done, tiles in all)`` after every batch and
    returns the Prediction."""
    image = pick_channel(image, channel, seg.info.channels, seg.channel)
    frames, stack = seg.prepare_frames(image)
    grid = scale.frame_grid(seg.info.pixel_size, pixel_size, frames[0][0].shape[:2])
    shapes = [grid.model_shape if grid else f.shape for f, _ in frames]
    cost.check_predict_memory(shapes, seg.info.classes, stack)
    runs = [seg.frame_run(grid.image(f) if grid else f, s) for f, s in frames]
    total, done = sum(len(r.tiles) for r in runs), 0
    yield done, total
    for run in runs:
        for tiles, batch in run.batches():
            run.stitch(tiles, seg.predict_batch(batch))
            done += len(tiles)
            yield done, total
    outs = [grid.back(r.result) if grid else r.result for r in runs]
    probs = np.stack(outs) if stack else outs[0]
    return _prediction(seg, probs, [s for _, s in frames], runs, grid)


def _prediction(
    seg: Segmenter,
    probs: np.ndarray,
    scalings: Sequence[processing.Scaling],
    runs: Sequence[Any],
    grid: scale.Grid | None,
) -> Prediction:
    """The Prediction of ``probs``: the normalisation, rescale and quality records with it."""
    info, rescaled = seg.info, grid.rescale.to_dict() if grid else None
    quality = seg.guard.assess_runs(runs, scalings) if seg.guard else None
    stats = tuple(s.to_dict() for s in scalings)
    return Prediction(probs, stats, info.object_classes, rescaled, quality, info.border_classes)


def check_tiling(
    geometry: Geometry | TileGeometry, tile: Any, max_tile: int, memory_budget: int | None
) -> tuple[int, int] | None:
    """A Segmenter's ``tile`` as (height, width) (None: chosen per image), after refusing
    (:class:`~unet_edge.InputError`) an illegal tile, a ``max_tile`` below the smallest legal
    tile and a ``memory_budget`` that is not a positive number of bytes."""
    pair = None if tile is None else tiling._as_pair(tile)
    for t in pair or ():
        geometry.check_tile(t)
    check_int("max_tile", max_tile, 1)
    check_int("memory_budget", memory_budget, 1, optional=True)
    if max_tile < geometry.min_input:
        raise InputError(
            f"max_tile {max_tile} is below the smallest legal tile {geometry.min_input}"
        )
    return pair


def new_plan(seg: Segmenter, shape: tuple[int, int], budget: int | None) -> tiling.TilePlan:
    """The tile plan of ``seg`` for (H, W) images: its tile, or the one computing the fewest
    pixels whose activations (batch included) fit ``budget`` bytes (None: any)."""
    known = seg.source.origin == "unet-edge"  # else the activations are not known
    tile_bytes = (
        functools.partial(cost.activation_bytes, seg.info.architecture, batch=seg.batch_size)
        if known
        else None
    )
    tile = seg.tile or tiling.choose_tile(
        shape, seg.geometry, seg.max_tile, tile_bytes=tile_bytes, memory_budget=budget
    )
    return tiling.plan(shape, seg.geometry, tile)
