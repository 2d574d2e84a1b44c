"""Elastic deformation and tile sampling (numpy + OpenCV; no torch needed)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from unet_edge.config import Normalization
from unet_edge.geometry import Geometry
from unet_edge.training.augment import (
    AugmentConfig,
    cubic_matrix,
    elastic_field,
    exposure,
    flip_rotate,
    remap,
    sampling_maps,
    upsample_field,
)
from unet_edge.training.data import SegmentationData

IDENTITY = Normalization(mean=0.0, std=1.0)


def test_cubic_matrix_rows_sum_to_one_and_hit_the_grid_points():
    m = cubic_matrix(3, 101)
    np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-12)
    # corner-aligned: pixels 0, 50, 100 sit exactly on the three grid points
    for pixel, point in ((0, 0), (50, 1), (100, 2)):
        expected = np.zeros(3)
        expected[point] = 1
        np.testing.assert_allclose(m[pixel], expected, atol=1e-12)


def test_upsampled_field_interpolates_the_coarse_grid_smoothly():
    coarse = np.array([[0.0, 5.0, -3.0], [2.0, 10.0, 1.0], [-4.0, 0.0, 7.0]])
    f = upsample_field(coarse, (61, 81))
    assert f.shape == (61, 81) and f.dtype == np.float32
    for (i, j), v in np.ndenumerate(coarse):
        assert f[i * 30, j * 40] == pytest.approx(v, abs=1e-5)
    # smooth: neighbouring pixels differ by a fraction of the grid step
    assert np.abs(np.diff(f, axis=0)).max() < 1.0 and np.abs(np.diff(f, axis=1)).max() < 1.0


def test_elastic_field_has_the_requested_spread_and_is_seeded():
    a = elastic_field(np.random.default_rng(1), (33, 33), sigma=10.0)
    b = elastic_field(np.random.default_rng(1), (33, 33), sigma=10.0)
    np.testing.assert_array_equal(a[0], b[0])
    corners = np.array(
        [elastic_field(np.random.default_rng(s), (33, 33))[1][0, 0] for s in range(400)]
    )
    assert 8.5 < corners.std() < 11.5  # corner pixels are grid points: N(0, 10)


def test_warp_on_a_known_grid_reads_the_mapped_coordinates():
    # A ramp image whose value is its own x (or y) coordinate: after the warp,
    # each pixel must hold the source coordinate the field sent it to.
    h, w = 200, 240
    ramp_x = np.tile(np.arange(w, dtype=np.float32), (h, 1))
    ramp_y = np.tile(np.arange(h, dtype=np.float32)[:, None], (1, w))
    dy, dx = elastic_field(np.random.default_rng(7), (64, 64), sigma=6.0)
    mx, my = sampling_maps((70, 80), dy, dx)
    assert (mx.min() > 0) and (mx.max() < w - 1) and (my.min() > 0) and (my.max() < h - 1)
    np.testing.assert_allclose(remap(ramp_x, mx, my, nearest=False), mx, atol=1e-2)
    np.testing.assert_allclose(remap(ramp_y, mx, my, nearest=False), my, atol=1e-2)
    # a constant field is a pure shift
    shift = np.full((64, 64), 3.0, np.float32)
    zero = np.zeros((64, 64), np.float32)
    mx, my = sampling_maps((10, 20), shift, zero)
    image = np.random.default_rng(0).random((h, w)).astype(np.float32)
    np.testing.assert_array_equal(remap(image, mx, my, nearest=False), image[13:77, 20:84])


def test_flip_rotate_treats_tile_and_centre_alike():
    rng = np.random.default_rng(0)
    tile = np.arange(36.0).reshape(6, 6)
    centre = tile[2:4, 2:4].copy()
    for _ in range(10):
        t, c = flip_rotate([tile, centre], rng, AugmentConfig())
        np.testing.assert_array_equal(t[2:4, 2:4], c)


def _write_pairs(folder: Path, images: list[np.ndarray], labels: list[np.ndarray]) -> Path:
    (folder / "image").mkdir(parents=True)
    (folder / "label").mkdir()
    for i, (im, lab) in enumerate(zip(images, labels, strict=True)):
        cv2.imwrite(str(folder / "image" / f"{i:02d}.png"), im)
        cv2.imwrite(str(folder / "label" / f"{i:02d}.png"), lab)
    return folder


def test_elastic_sample_keeps_labels_aligned_with_the_image(tmp_path: Path):
    # Pixel values encode the label (cells 220, membrane 20): after the same
    # warp (image bilinear, labels nearest), every pure-valued image pixel must
    # agree with its label.
    rng = np.random.default_rng(5)
    labels = np.full((120, 120), 255, np.uint8)
    labels[::17] = 0
    labels[:, ::13] = 0
    labels[40:47, 30:90] = 0
    image = np.where(labels == 255, 220, 20).astype(np.uint8)
    # dtype-range scaling keeps the pixel values readable (x / 255)
    data = SegmentationData.from_folder(
        _write_pairs(tmp_path, [image], [labels]), scaling=Normalization()
    )
    aug = AugmentConfig(
        elastic_sigma=10.0, shift=4.0, gamma=0, contrast=0, brightness=0, exposure=0
    )
    geo = Geometry(depth=2)  # halo 20 (valid, 3x3), legal tiles 44 + 4k
    halo, out = geo.halo, geo.output_size(84)
    assert (halo, out) == (20, 44)
    pure = agree = 0
    for _ in range(20):
        s = data.sample(rng, geo, 84, IDENTITY, aug)
        assert s.image.shape == (1, 84, 84) and s.labels.shape == (out, out)
        centre = s.image[0, halo:-halo, halo:-halo] * 255
        cell, membrane = np.abs(centre - 220) < 0.5, np.abs(centre - 20) < 0.5
        pure += cell.sum() + membrane.sum()
        agree += (s.labels[cell] == 1).sum() + (s.labels[membrane] == 0).sum()
    assert pure > 0.6 * 20 * out * out
    assert agree == pure


def test_unaugmented_sample_is_the_mirror_padded_crop(tmp_path: Path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (50, 60), dtype=np.uint8)
    labels = np.where(rng.random((50, 60)) > 0.5, 255, 0).astype(np.uint8)
    data = SegmentationData.from_folder(
        _write_pairs(tmp_path, [image], [labels]), scaling=Normalization()
    )
    geo = Geometry(depth=2)
    s = data.sample(rng, geo, 64, IDENTITY, None, origin=(0, 30))  # halo 20, output 24
    assert s.labels.shape == (24, 24)
    padded = cv2.copyMakeBorder(image, 20, 20, 20, 20, cv2.BORDER_REFLECT)
    # output origin (0, 30) in the image is (20, 50) in the padded image
    np.testing.assert_allclose(s.image[0] * 255, padded[0:64, 30:94], atol=1e-3)
    np.testing.assert_array_equal(s.labels, labels[0:24, 30:54] // 255)
    np.testing.assert_allclose(s.weights, data.weights[0][0:24, 30:54])


def test_exposure_is_a_camera_gain_and_offset_seen_through_the_percentiles() -> None:
    """Equal to rescaling the clipped raw image by its own (mapped) percentiles."""
    rng = np.random.default_rng(1)
    raw = rng.integers(0, 4096, (64, 64)).astype(np.float32)
    lo, hi = np.percentile(raw, (1.0, 99.8))
    scaled = (raw - lo) / (hi - lo)
    cfg = AugmentConfig(exposure=1.0, gain=0.5, offset=0.15)
    out = exposure(scaled, (float(lo), float(hi), 4095.0), np.random.default_rng(7), cfg)
    draw = np.random.default_rng(7)
    draw.random()
    g, o = draw.uniform(0.5, 1.5), draw.uniform(-0.15, 0.15) * 4095.0
    cam = np.clip(g * raw + o, 0, 4095)
    lo2, hi2 = np.clip(g * np.array([lo, hi]) + o, 0, 4095)
    np.testing.assert_allclose(out, (cam - lo2) / (hi2 - lo2), atol=1e-4)
    assert exposure(scaled, (lo, hi, 4095.0), rng, AugmentConfig(exposure=0.0)) is scaled


def test_exposure_uses_each_channels_own_percentiles() -> None:
    rng = np.random.default_rng(2)
    scaled = rng.random((32, 32, 2)).astype(np.float32)
    lows, highs, cfg = (10.0, 300.0), (200.0, 3000.0), AugmentConfig(exposure=1.0)
    both = exposure(scaled, (lows, highs, 4095.0), np.random.default_rng(9), cfg)
    for c in range(2):
        one = exposure(
            scaled[:, :, c : c + 1],
            ((lows[c],), (highs[c],), 4095.0),
            np.random.default_rng(9),
            cfg,
        )
        np.testing.assert_allclose(both[:, :, c : c + 1], one, rtol=1e-6)
