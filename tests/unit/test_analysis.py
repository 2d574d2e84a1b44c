"""unet_edge.analysis: the channel of an array, the tiling options and the tile plan."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from unet_edge import ConfigError, InputError, Segmenter
from unet_edge.analysis import check_channel, check_tiling, new_plan, pick_channel
from unet_edge.config import UNetConfig
from unet_edge.geometry import Geometry


def test_check_channel_takes_whole_numbers_for_1_channel_models() -> None:
    assert check_channel(None, 1) is None and check_channel(None, 3) is None
    assert check_channel(np.int64(2), 1) == 2 and type(check_channel(np.int64(2), 1)) is int
    for bad in (-1, 0.5, "0", True):
        with pytest.raises(InputError, match="channel must be a whole number"):
            check_channel(bad, 1)
    with pytest.raises(InputError, match="picking one is for 1-channel models") as caught:
        check_channel(0, 2)
    assert caught.value.option == "channel"


def test_pick_channel_shapes() -> None:
    rgb = np.arange(5 * 6 * 3, dtype=np.uint8).reshape(5, 6, 3)
    assert pick_channel(rgb, None, 1) is rgb  # nothing picked: unchanged
    assert np.array_equal(pick_channel(rgb, None, 1, default=2), rgb[..., 2])
    assert np.array_equal(pick_channel(rgb, 0, 1, default=2), rgb[..., 0])  # the call wins
    stack = pick_channel(np.stack([rgb, rgb + 1]), 1, 1)
    assert isinstance(stack, list) and len(stack) == 2
    assert np.array_equal(stack[1], rgb[..., 1] + 1)
    listed = pick_channel((rgb, rgb), 2, 1)
    assert [f.shape for f in listed] == [(5, 6), (5, 6)]
    one = pick_channel(rgb[..., :1], 0, 1)  # (H, W, 1): one channel
    assert one.shape == (5, 6)
    nested = pick_channel(rgb.tolist(), 1, 1)  # nested lists become an array first
    assert np.array_equal(nested, rgb[..., 1])


def test_pick_channel_refuses_what_is_not_channels_last() -> None:
    with pytest.raises(InputError, match=r"whose last axis .* has 7 entries"):
        pick_channel(np.zeros((4, 6, 7), np.uint8), 0, 1)
    with pytest.raises(InputError, match=r"has 3 channels \(0, 1, 2\)"):
        pick_channel(np.zeros((8, 8, 3), np.uint8), 5, 1)


def test_check_tiling() -> None:
    g = Geometry.from_config(UNetConfig(depth=4))
    assert check_tiling(g, None, 1024, None) is None
    assert check_tiling(g, 188, 1024, 1 << 20) == (188, 188)
    with pytest.raises(ConfigError, match="use 188 or 204"):
        check_tiling(g, 190, 1024, None)  # not a legal tile
    with pytest.raises(InputError, match="below the smallest legal tile 188"):
        check_tiling(g, None, 100, None)
    with pytest.raises(ConfigError, match="memory_budget must be an integer >= 1"):
        check_tiling(g, None, 1024, 0)


def test_new_plan_is_the_segmenters_plan(tiny_onnx: Path) -> None:
    with Segmenter(tiny_onnx) as seg:
        p = new_plan(seg, (300, 200), seg.memory_budget)
        assert p == seg.plan_for((300, 200))
    with Segmenter(tiny_onnx, tile=204) as fixed:
        assert new_plan(fixed, (300, 200), None).tile_shape == (204, 204)
