"""unet_edge.objects.measure: additive per-object sums; windows add up to the whole image."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from unet_edge.errors import InputError
from unet_edge.imagemeta import Calibration
from unet_edge.objects.labels import label
from unet_edge.objects.measure import ObjectSums, measure_labels, measure_stack

INTS = ("count", "min_y", "max_y", "min_x", "max_x", "edges_y", "edges_x")
FLOATS = ("sum_y", "sum_x", "sum_prob", "sum_raw")


def _labels(seed: int, shape: tuple[int, int] = (97, 131)) -> np.ndarray:
    noise = np.random.default_rng(seed).random(shape).astype(np.float32)
    return label(cv2.GaussianBlur(noise, (0, 0), 2.5) > 0.5)


def _assert_same(a: ObjectSums, b: ObjectSums) -> None:
    for f in INTS:
        assert np.array_equal(getattr(a, f), getattr(b, f)), f
    for f in FLOATS:
        assert np.allclose(getattr(a, f), getattr(b, f), rtol=1e-12), f


def test_a_square_and_an_l() -> None:
    lab = np.zeros((6, 7), np.uint32)
    lab[1:4, 1:4] = 1  # 3 x 3 square: perimeter 12
    lab[0, 5] = lab[1, 5] = lab[1, 6] = 2  # L-tromino at the image edge: perimeter 8
    t = measure_labels(lab, prob=np.full(lab.shape, 0.25), raw=np.arange(42).reshape(6, 7))
    assert t.unit == "px" and list(t["label"]) == [1, 2] and list(t["slice"]) == [1, 1]
    assert list(t["area_px"]) == [9, 3] and list(t["perimeter_px"]) == [12, 8]
    assert list(t["centroid_y_px"]) == pytest.approx([2.5, (0.5 + 1.5 + 1.5) / 3])
    assert list(t["centroid_x_px"]) == pytest.approx([2.5, (5.5 + 5.5 + 6.5) / 3])
    assert list(t["bbox_top_px"]) == [1, 0] and list(t["bbox_left_px"]) == [1, 5]
    assert list(t["bbox_height_px"]) == [3, 2] and list(t["bbox_width_px"]) == [3, 2]
    assert t["equivalent_diameter_px"][0] == pytest.approx(math.sqrt(36 / math.pi))
    assert list(t["mean_probability"]) == [0.25, 0.25]
    assert t["mean_intensity"][1] == pytest.approx((5 + 12 + 13) / 3)


def test_calibrated_units_and_anisotropic_pixels() -> None:
    lab = np.zeros((4, 5), np.uint32)
    lab[1:3, 1:4] = 1  # 2 rows x 3 columns
    t = measure_labels(lab, calibration=Calibration(0.5, 0.25, "µm"))  # x 0.5, y 0.25
    assert t.unit == "um" and "mean_probability" not in t.names
    assert t["area_um2"][0] == pytest.approx(6 * 0.125)
    assert t["perimeter_um"][0] == pytest.approx(2 * 3 * 0.5 + 2 * 2 * 0.25)
    assert t["bbox_width_um"][0] == pytest.approx(1.5) and t["bbox_height_um"][0] == 0.5
    assert t["centroid_x_um"][0] == pytest.approx(2.5 * 0.5)
    nm = measure_labels(lab, calibration=Calibration(500.0, 250.0, "nm"))
    assert nm["area_um2"][0] == pytest.approx(t["area_um2"][0])


def _windows(shape: tuple[int, int], size: int) -> list[tuple[int, int, int, int]]:
    return [
        (top, left, min(size, shape[0] - top), min(size, shape[1] - left))
        for top in range(0, shape[0], size)
        for left in range(0, shape[1], size)
    ]


@pytest.mark.parametrize(("seed", "size"), [(0, 16), (1, 23), (2, 1), (3, 200)])
def test_windows_add_up_to_the_whole_image(seed: int, size: int) -> None:
    lab = _labels(seed)
    rng = np.random.default_rng(seed)
    prob, raw = rng.random(lab.shape), rng.integers(0, 4096, (*lab.shape, 2))
    whole = ObjectSums(2).add(lab, prob=prob, raw=raw)
    padded = np.pad(lab, 1)
    parts = ObjectSums(2)
    for top, left, h, w in _windows(lab.shape, size):
        part = ObjectSums(2).add(
            lab[top : top + h, left : left + w],
            top,
            left,
            prob=prob[top : top + h, left : left + w],
            raw=raw[top : top + h, left : left + w],
            ring=padded[top : top + h + 2, left : left + w + 2],
        )
        parts = parts.merge(part)
    _assert_same(parts, whole)
    assert parts.table().to_csv().splitlines()[0] == whole.table().to_csv().splitlines()[0]


def test_relabel_joins_provisional_ids() -> None:
    lab = _labels(5)
    whole = ObjectSums().add(lab)
    # Each half numbers its objects on its own (provisional ids), as a windowed pass does.
    half = lab.shape[1] // 2
    left, right = lab[:, :half], lab[:, half:]
    offset = int(lab.max())
    provisional = np.where(right > 0, right.astype(np.int64) + offset, 0)
    ring = np.pad(lab, 1) > 0  # whether each pixel is an object pixel: ids may differ
    sums = ObjectSums().add(left, 0, 0, ring=ring[:, : half + 2])
    sums = sums.merge(ObjectSums().add(provisional, 0, half, ring=ring[:, half:]))
    mapping = np.arange(sums.size)
    mapping[offset + 1 :] = np.arange(1, sums.size - offset)  # provisional id -> global id
    _assert_same(sums.relabel(mapping), whole)
    with pytest.raises(InputError, match="mapping"):
        sums.relabel(np.arange(3))


def test_stack_table_has_one_block_per_slice() -> None:
    stack = np.stack([_labels(6, (30, 40)), _labels(7, (30, 40))])
    t = measure_stack(stack, prob=np.ones(stack.shape), raw=np.ones(stack.shape))
    counts = [int(s.max()) for s in stack]
    assert len(t) == sum(counts)
    assert list(t["slice"]) == [1] * counts[0] + [2] * counts[1]
    assert int(t["area_px"].sum()) == int((stack > 0).sum())


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(InputError, match="integer"):
        ObjectSums().add(np.zeros((3, 3), np.float32))
    with pytest.raises(InputError, match="ring"):
        ObjectSums().add(np.zeros((3, 3), np.uint32), ring=np.zeros((3, 3), np.uint32))
    with pytest.raises(InputError, match="channel"):
        ObjectSums().add(np.ones((3, 3), np.uint32), raw=np.ones((3, 3, 2)))
