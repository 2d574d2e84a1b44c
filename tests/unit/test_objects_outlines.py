"""unet_edge.objects.outlines: pixel-edge polygons whose inside is exactly the object."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from unet_edge.objects.labels import label
from unet_edge.objects.outlines import Outline, outlines, ring_area


def _inside(outline: Outline, shape: tuple[int, int]) -> np.ndarray:
    """Pixels whose centre lies inside the polygon (even-odd, holes out), as ImageJ fills."""
    path_mod = pytest.importorskip("matplotlib.path", reason="an independent polygon test")
    ys, xs = np.mgrid[: shape[0], : shape[1]]
    centres = np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5], axis=1)
    inside = np.zeros(len(centres), bool)
    for ring in (outline.exterior, *outline.holes):
        inside ^= path_mod.Path(ring).contains_points(centres)
    return inside.reshape(shape)


@pytest.mark.parametrize("seed", range(3))
def test_polygons_cover_exactly_their_object(seed: int) -> None:
    noise = np.random.default_rng(seed).random((48, 57)).astype(np.float32)
    lab = label(cv2.GaussianBlur(noise, (0, 0), 1.2 + seed) > 0.5)
    found = list(outlines(lab))
    assert [o.label for o in found] == list(range(1, int(lab.max()) + 1))
    assert any(o.holes for o in found) or seed  # random blobs do have holes
    for o in found:
        assert np.array_equal(_inside(o, lab.shape), lab == o.label), o.label
        area = abs(ring_area(o.exterior)) - sum(abs(ring_area(h)) for h in o.holes)
        ys, xs = np.nonzero(lab == o.label)
        assert area == len(ys)
        assert o.bounds == (xs.min(), ys.min(), np.ptp(xs) + 1, np.ptp(ys) + 1)
        assert o.exterior.dtype == np.int64 and (o.exterior[0] != o.exterior[-1]).any()


def test_a_ring_has_one_hole_and_a_pixel_is_a_square() -> None:
    lab = np.zeros((8, 8), np.uint32)
    lab[1:6, 1:6] = 1
    lab[3, 3] = 0
    lab[7, 7] = 2
    ring, pixel = outlines(lab)
    assert len(ring.holes) == 1 and abs(ring_area(ring.holes[0])) == 1
    assert sorted(map(tuple, ring.exterior)) == [(1, 1), (1, 6), (6, 1), (6, 6)]
    assert sorted(map(tuple, pixel.exterior)) == [(7, 7), (7, 8), (8, 7), (8, 8)]
    assert pixel.bounds == (7, 7, 1, 1) and not pixel.holes


def test_a_one_pixel_diagonal_line_is_one_outline_per_pixel() -> None:
    lab = label(np.eye(6, dtype=bool))
    found = list(outlines(lab))
    assert len(found) == 6 and all(abs(ring_area(o.exterior)) == 1 for o in found)
