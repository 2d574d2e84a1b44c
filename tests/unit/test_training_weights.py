"""The paper's border weight map (numpy + OpenCV; no torch needed)."""

from __future__ import annotations

import numpy as np
import pytest

from unet_edge.errors import InputError
from unet_edge.training.weights import border_distances, class_balance, weight_map

# The reference computations use scipy (the [train] extra): the module skips without it.
ndimage = pytest.importorskip("scipy.ndimage", reason="the reference needs scipy ([train] extra)")


def two_discs(gap: int = 2, radius: int = 20) -> tuple[np.ndarray, int, int]:
    """Two discs (class 1) on row 32, separated by a ``gap``-px background line.

    Returns the labels and the last column of the left disc / first column of
    the right disc on row 32.
    """
    cx1 = 20 + radius
    cx2 = cx1 + 2 * (radius - 1) + gap + 1
    yy, xx = np.mgrid[:64, : cx2 + radius + 20]
    a = (yy - 32) ** 2 + (xx - cx1) ** 2 <= (radius - 0.5) ** 2
    b = (yy - 32) ** 2 + (xx - cx2) ** 2 <= (radius - 0.5) ** 2
    labels = (a | b).astype(np.uint8)
    assert ndimage.label(labels)[1] == 2
    return labels, cx1 + radius - 1, cx2 - radius + 1


def brute_force(labels: np.ndarray, w0: float = 10.0, sigma: float = 5.0) -> np.ndarray:
    """Reference: full-image exact EDT for every cell, sorted per pixel."""
    inst, n = ndimage.label(labels > 0)
    d = np.stack([ndimage.distance_transform_edt(inst != k) for k in range(1, n + 1)])
    d.sort(axis=0)
    d1, d2 = d[0], d[1] if n > 1 else np.full(labels.shape, np.inf)
    border = w0 * np.exp(-((d1 + d2) ** 2) / (2 * sigma**2))
    border[labels > 0] = 0
    return class_balance(labels, 2)[labels] + border


def test_weights_peak_on_the_gap_between_touching_discs():
    labels, left, right = two_discs(gap=2)
    w = weight_map(labels)
    assert labels[32, left] == 1 and labels[32, right] == 1
    assert not labels[32, left + 1 : right].any() and right - left - 1 == 2
    # the maximum is reached in the gap where the discs touch, and only near there
    assert w[32, left + 1 : right].max() == pytest.approx(w.max())
    peaks = np.argwhere(w >= w.max() - 1e-4)
    assert np.all((peaks[:, 1] > left) & (peaks[:, 1] < right))
    assert np.all(np.abs(peaks[:, 0] - 32) <= 8)
    # far background only gets the class weight; the gap gets the border term on top
    wc = class_balance(labels, 2)
    assert w[0, 0] == pytest.approx(wc[0])
    assert w[32, left + 1] > wc[0] + 0.8 * 10.0
    np.testing.assert_allclose(w[labels == 1], wc[1])


def test_weight_map_matches_brute_force_on_random_cells():
    rng = np.random.default_rng(3)
    # random blobs, separated by background lines (like EM membranes)
    noise = ndimage.gaussian_filter(rng.normal(size=(90, 110)), 3)
    labels = (noise > 0.02).astype(np.uint8)
    labels[::23, :] = 0
    labels[:, ::31] = 0
    assert ndimage.label(labels)[1] > 5
    np.testing.assert_allclose(weight_map(labels), brute_force(labels), atol=1e-4)


def test_border_distances_are_nearest_and_second_nearest():
    labels = np.zeros((5, 30), np.uint8)
    labels[:, 0] = 1  # cell A at x = 0
    labels[:, 10] = 1  # cell B at x = 10
    d1, d2 = border_distances(labels, reach=30)
    assert d1[2, 4] == pytest.approx(4) and d2[2, 4] == pytest.approx(6)
    assert d1[2, 20] == pytest.approx(10) and d2[2, 20] == pytest.approx(20)
    assert d1[2, 0] == 0 and d2[2, 0] == pytest.approx(10)


def test_class_balance_equalises_weighted_frequencies():
    labels = np.zeros((10, 10), np.uint8)
    labels[:2] = 1
    wc = class_balance(labels, 3)
    assert wc[0] * 80 == pytest.approx(wc[1] * 20)
    assert wc[2] == 1.0  # absent class
    assert (wc[labels]).mean() == pytest.approx(1.0)


def test_weight_map_refuses_non_integer_labels():
    with pytest.raises(InputError, match="integer class map"):
        weight_map(np.zeros((4, 4), np.float32))
