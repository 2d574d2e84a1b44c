"""unet_edge.precision.calibrate: the runtime's tiles, fed to the calibrator one by one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from unet_edge import metadata
from unet_edge.errors import InputError
from unet_edge.precision.calibrate import TileReader, calibration_tiles


def test_tile_reader_feeds_each_tile_once_then_rewinds() -> None:
    tiles = [np.full((1, 1, 4, 4), i, np.float32) for i in range(3)]
    r = TileReader("image", tiles)
    got = [r.get_next() for _ in range(4)]
    assert [None if g is None else float(g["image"][0, 0, 0, 0]) for g in got] == [0, 1, 2, None]
    r.rewind()
    assert len(r) == 3 and r.get_next() is not None


def test_calibration_tiles_spread_and_refusals(tiny_onnx: Path) -> None:
    info = metadata.read(tiny_onnx)
    frame = np.random.default_rng(0).integers(0, 255, (300, 320), np.uint8)
    every = calibration_tiles(info, [frame], tile=204)
    assert len(every) > 2 and all(t.shape == (1, 1, 204, 204) for t in every)
    two = calibration_tiles(info, [frame], tile=204, max_tiles=2)
    assert np.array_equal(two[0], every[0]) and np.array_equal(two[1], every[-1])
    with pytest.raises(InputError, match="max_tiles"):
        calibration_tiles(info, [frame], max_tiles=0)
    with pytest.raises(InputError, match="no calibration images"):
        calibration_tiles(info, [])
