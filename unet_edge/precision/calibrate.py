"""int8 calibration data: the runtime's own normalised tiles of the calibration images."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from .. import kernel, tiling
from ..errors import InputError
from ..metadata import ModelInfo
from ..tiling import DEFAULT_MAX_TILE

__all__ = ["MAX_CALIBRATION_TILES", "TileReader", "calibration_tiles"]

#: Calibration tiles used at most; more are subsampled evenly over the images.
MAX_CALIBRATION_TILES = 32


def calibration_tiles(
    info: ModelInfo,
    frames: Sequence[np.ndarray],
    tile: int | tuple[int, int] | None = None,
    max_tiles: int = MAX_CALIBRATION_TILES,
    max_tile: int = DEFAULT_MAX_TILE,
) -> list[np.ndarray]:
    """Normalised float32 (1, C, th, tw) tiles cut from ``frames`` as the runtime cuts them.

    Each frame (or each frame of a stack, by :func:`unet_edge.processing.as_frames`)
    is normalised per the model's metadata with its own statistics, planned
    with ``tile`` (``None``: :func:`unet_edge.tiling.choose_tile`, as
    :class:`Segmenter` does), and cut by the kernel
    (:class:`unet_edge.tiling.TileRun`). At most ``max_tiles`` are returned,
    spread evenly over all tiles of all frames.
    """
    if max_tiles < 1:
        raise InputError(f"max_tiles must be >= 1, got {max_tiles}")
    found: list[np.ndarray] = []
    for image in frames:
        for frame, scaling in kernel.prepare_frames(image, info)[0]:
            shape = (frame.shape[0], frame.shape[1])
            t = tile if tile is not None else tiling.choose_tile(shape, info.geometry, max_tile)
            run = kernel.for_frame(info, frame, tiling.plan(shape, info.geometry, t), scaling)
            found.extend(batch for _, batch in run.batches(reuse=False))
    if not found:
        raise InputError("no calibration images were given")
    keep = np.unique(np.linspace(0, len(found) - 1, min(max_tiles, len(found))).round().astype(int))
    return [found[i] for i in keep]


class TileReader(CalibrationDataReader):
    """Feeds calibration tiles to onnxruntime's calibrator, one (1, C, th, tw) tile per call."""

    def __init__(self, input_name: str, tiles: Sequence[np.ndarray]) -> None:
        self.input_name = input_name
        self.tiles = list(tiles)
        self._next = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next tile as onnxruntime's feed dict, or None when all were given."""
        if self._next >= len(self.tiles):
            return None
        self._next += 1
        return {self.input_name: self.tiles[self._next - 1]}

    def rewind(self) -> None:
        """Start again from the first tile."""
        self._next = 0

    def __len__(self) -> int:
        return len(self.tiles)
