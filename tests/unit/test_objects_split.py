"""unet_edge.objects.split: touching convex objects split along their neck."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from unet_edge.objects.labels import label


def _discs(shape: tuple[int, int], discs: list[tuple[int, int, int]]) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    for x, y, r in discs:
        cv2.circle(mask, (x, y), r, 1, -1)
    return mask.astype(bool)


def _neck_x(c1: int, r1: int, c2: int, r2: int) -> float:
    """Where two circles on one row intersect (x): the neck between the discs."""
    d = c2 - c1
    return c1 + (d * d + r1 * r1 - r2 * r2) / (2 * d)


@pytest.mark.parametrize(("r1", "r2"), [(20, 20), (30, 20), (25, 14)])
def test_two_touching_discs_are_split_at_their_neck(r1: int, r2: int) -> None:
    c1, c2 = 40, 40 + r1 + r2 - 6  # overlapping by 6 px: one connected region
    mask = _discs((100, 140), [(c1, 50, r1), (c2, 50, r2)])
    assert label(mask).max() == 1
    out = label(mask, split="watershed")
    assert out.max() == 2 and np.array_equal(out > 0, mask)  # every object pixel kept
    assert out[50, c1] == 1 and out[50, c2] == 2  # raster order: the left disc first
    row = out[50]
    cut = np.flatnonzero(row == 2)[0]  # first pixel of the right disc on the centre row
    assert abs(cut - _neck_x(c1, r1, c2, r2)) <= 1.5
    for part in (1, 2):  # each part is one 4-connected region
        n, _ = cv2.connectedComponents((out == part).view(np.uint8), connectivity=4)
        assert n == 2
    areas = [int((out == k).sum()) for k in (1, 2)]
    expected = [np.pi * r1 * r1, np.pi * r2 * r2]
    assert areas == pytest.approx(expected, rel=0.12)


def test_convex_objects_and_bumpy_outlines_are_not_split() -> None:
    mask = np.zeros((120, 160), np.uint8)
    cv2.ellipse(mask, (60, 60), (45, 20), 30, 0, 360, 1, -1)  # elongated but convex
    cv2.rectangle(mask, (120, 10), (150, 100), 1, -1)
    mask[40, 119] = 1  # a one-pixel bump on the rectangle's edge
    cv2.circle(mask, (130, 110), 5, 1, -1)  # a small disc well apart
    m = mask.astype(bool)
    assert np.array_equal(label(m, split="watershed"), label(m))


def test_three_discs_in_a_row_and_unchanged_separate_objects() -> None:
    mask = _discs((60, 200), [(30, 30, 18), (62, 30, 18), (94, 30, 18), (160, 30, 12)])
    out = label(mask, split="watershed")
    assert out.max() == 4
    assert [int(out[30, x]) for x in (30, 62, 94, 160)] == [1, 2, 3, 4]


def test_split_respects_min_size_first() -> None:
    mask = _discs((60, 120), [(30, 30, 16), (58, 30, 16)])
    mask[0, 0] = True
    assert label(mask, split="watershed").max() == 3
    assert label(mask, min_size=2, split="watershed").max() == 2


def test_objects_cut_by_the_image_border_are_split_too() -> None:
    discs = [(4, 30, 12), (24, 30, 12), (100, 4, 12), (100, 24, 12), (176, 30, 12), (155, 30, 12)]
    mask = _discs((60, 180), discs)
    assert label(mask).max() == 3
    out = label(mask, split="watershed")
    assert out.max() == 6 and np.array_equal(out > 0, mask)
    assert len({int(out[y, x]) for x, y, _ in discs}) == 6


def _ragged_disc(
    rng: np.random.Generator, shape: tuple[int, int], x: int, y: int, r: int
) -> np.ndarray:
    """A disc whose outline is nibbled and bumped pixel by pixel, as a thresholded
    probability map's is."""
    mask = _discs(shape, [(x, y, r)])
    ring = _discs(shape, [(x, y, r + 2)]) & ~_discs(shape, [(x, y, r - 2)])
    flip = ring & (rng.random(shape) < 0.35)
    return mask ^ flip


@pytest.mark.parametrize("r", [8, 15, 30, 45])
def test_a_ragged_outline_is_one_object_at_any_size(r: int) -> None:
    rng = np.random.default_rng(r)
    mask = _ragged_disc(rng, (100, 100), 50, 50, r)
    out = label(mask, min_size=10, split="watershed")
    assert out.max() == 1, f"a ragged disc of radius {r} fell into {out.max()} parts"


def test_a_small_nucleus_touching_a_large_one_is_split() -> None:
    mask = _discs((100, 140), [(45, 50, 32), (45 + 32 + 11 - 4, 50, 11)])
    assert label(mask).max() == 1
    out = label(mask, split="watershed")
    assert out.max() == 2 and out[50, 45] != out[50, 45 + 32 + 7]
