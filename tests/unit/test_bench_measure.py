"""Checking every timed output (unet_edge/bench/measure.py): how far probabilities are from
the reference's, the share of pixels whose class changed, agreement with labels."""

from __future__ import annotations

import numpy as np
import pytest

from unet_edge import bench


def _probs(fg: np.ndarray) -> np.ndarray:
    """(2, H, W) float32 probabilities with foreground ``fg``."""
    return np.stack([1 - fg, fg]).astype(np.float32)


def test_identical_outputs_check_clean() -> None:
    ref = _probs(np.random.default_rng(0).random((6, 7)))
    assert bench.check_masks(ref, ref) == {"max_abs_prob_diff": 0.0, "class_diff_share": 0.0}


def test_a_changed_pixel_is_counted_and_its_distance_kept() -> None:
    fg = np.full((4, 5), 0.2)
    ref = _probs(fg)
    fg2 = fg.copy()
    fg2[1, 2] = 0.9  # one pixel changes class (background -> foreground)
    fg2[3, 4] = 0.45  # one moves without changing class
    got = bench.check_masks(_probs(fg2), ref)
    assert got["class_diff_share"] == pytest.approx(1 / 20)
    assert got["max_abs_prob_diff"] == pytest.approx(0.7)


def test_labels_give_the_agreement_of_the_mask() -> None:
    fg = np.zeros((2, 4))
    fg[0] = 1.0  # the mask: top row foreground
    truth = np.array([[1, 1, 1, 0], [0, 0, 0, 0]])
    got = bench.check_masks(_probs(fg), _probs(fg), truth)
    assert got["label_agreement"] == pytest.approx(7 / 8)
    assert "label_agreement" not in bench.check_masks(_probs(fg), _probs(fg))
