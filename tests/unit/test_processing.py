"""Pixel values in and out (processing.py): normalisation, probabilities -> masks, overlays."""

from __future__ import annotations

import numpy as np
import pytest

from unet_edge import processing
from unet_edge.config import Normalization
from unet_edge.errors import InputError


@pytest.mark.parametrize("shape", [(2, 7, 5), (3, 40, 33), (5, 1, 1), (1, 3, 3), (4, 2, 8, 9)])
def test_fast_to_mask_equals_argmax(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    ax = len(shape) - 3
    for p in (rng.random(shape), rng.integers(0, 3, shape)):  # the second is full of ties
        p = p.astype(np.float32)
        got = processing.to_mask(p)
        assert got.dtype == np.uint8
        assert np.array_equal(got, np.argmax(p, axis=ax).astype(np.uint8))


def test_sixteen_bits_are_kept_and_scaled_like_eight() -> None:
    ramp16 = np.arange(0, 65536, 16, dtype=np.uint16).reshape(64, 64)
    x = processing.normalize(ramp16, Normalization(), 1)
    assert x.shape == (1, 64, 64) and x.dtype == np.float32
    assert len(np.unique(x)) == ramp16.size  # never truncated to 8 bits
    img8 = np.random.default_rng(0).integers(0, 256, (20, 30), dtype=np.uint8)
    img8[0, :2] = (0, 255)
    norm = Normalization(mean=0.5, std=0.25)
    a = processing.normalize(img8, norm, 1)
    b = processing.normalize(img8.astype(np.uint16) * 257, norm, 1)
    c = processing.normalize(img8.astype(np.float32) / 255, norm, 1)
    np.testing.assert_allclose(a, (img8[None] / 255 - 0.5) / 0.25, atol=1e-5)
    assert np.max(np.abs(a - b)) <= 1e-5 and np.max(np.abs(a - c)) <= 1e-5


def test_fixed_range_and_channel_order() -> None:
    rng = np.random.default_rng(1)
    rgb = rng.uniform(100, 1100, (6, 7, 3)).astype(np.float32)
    rgb[0, 0], rgb[0, 1] = 100, 1100
    norm = Normalization(mode="fixed_range", low=100, high=1100, mean=0.5, std=0.25)
    x = processing.normalize(rgb, norm, 3)
    assert x.shape == (3, 6, 7)
    np.testing.assert_allclose(x, ((np.moveaxis(rgb, 2, 0) - 100) / 1000 - 0.5) / 0.25, atol=1e-5)


@pytest.mark.parametrize(
    ("frame", "channels", "match"),
    [
        (np.zeros((4, 4), np.int64), 1, "unsupported pixel type"),
        (np.array([[0.5, np.nan]], np.float32), 1, "NaN"),
        (np.zeros((4, 4), np.uint8), 3, "3 channels"),
        (np.zeros((4, 4, 2), np.uint8), 3, "takes 3"),
    ],
)
def test_bad_frames_say_what_was_received(frame: np.ndarray, channels: int, match: str) -> None:
    with pytest.raises(InputError, match=match):
        processing.normalize(frame, Normalization(), channels)


def test_saved_masks_and_overlay() -> None:
    mask = np.array([[0, 1], [1, 0]], np.uint8)
    assert np.array_equal(processing.mask_to_image(mask, 2), mask * 255)
    assert np.array_equal(processing.mask_to_image(mask * 2, 3), mask * 2)
    frame = np.full((20, 30), 100, np.uint8)
    cells = np.zeros((20, 30), np.uint8)
    cells[5:15, 10:20] = 1
    out = processing.overlay(frame, cells)
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8
    assert np.all(out[0, 0] == 100)  # class 0 away from any outline is left as it was
    assert not np.all(out[10, 15] == 100)  # a cell is tinted
