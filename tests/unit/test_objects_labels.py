"""unet_edge.objects.labels: object masks, 4-connected labels in raster order, min size."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from unet_edge.errors import InputError
from unet_edge.imagemeta import Calibration
from unet_edge.objects.labels import (
    MinSize,
    label,
    label_classes,
    label_stack,
    object_mask,
    pixel_area_um2,
)


def _blobs(shape: tuple[int, int], seed: int, sigma: float = 2.0) -> np.ndarray:
    noise = np.random.default_rng(seed).random(shape).astype(np.float32)
    return np.asarray(cv2.GaussianBlur(noise, (0, 0), sigma) > 0.5)


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two label images are the same up to renumbering (0 stays background)."""
    if not np.array_equal(a > 0, b > 0):
        return False
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return len(pairs[0]) == len(np.unique(a)) == len(np.unique(b))


def _first_pixels_ascend(labels: np.ndarray) -> bool:
    ids, first = np.unique(labels.ravel(), return_index=True)
    first = first[ids > 0]
    return bool(np.all(np.diff(first) > 0)) and np.array_equal(
        ids[ids > 0], np.arange(1, len(first) + 1)
    )


def test_object_mask_picks_the_object_classes() -> None:
    classes = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    assert object_mask(classes, [1]).tolist() == [[False, True, False], [False, True, False]]
    assert object_mask(classes, (1, 2)).sum() == 4
    with pytest.raises(InputError, match="integer class indices"):
        object_mask(classes.astype(np.float32), [1])
    with pytest.raises(InputError, match="no object classes"):
        object_mask(classes, [])


def test_four_connectivity_and_raster_order() -> None:
    mask = np.array(
        [
            [0, 0, 0, 1],
            [1, 1, 0, 0],
            [0, 0, 1, 0],  # diagonal to row 1's pixels: another object (4-connectivity)
            [1, 0, 1, 0],
        ],
        bool,
    )
    out = label(mask)
    assert out.dtype == np.uint32
    assert out.tolist() == [[0, 0, 0, 1], [2, 2, 0, 0], [0, 0, 3, 0], [4, 0, 3, 0]]


@pytest.mark.parametrize("seed", range(4))
def test_labels_are_the_connected_components_numbered_by_first_pixel(seed: int) -> None:
    mask = _blobs((301, 257), seed, sigma=1.5 + seed)
    out = label(mask)
    n, ref = cv2.connectedComponents(mask.view(np.uint8), connectivity=4)
    assert out.max() == n - 1 and _same_partition(out, ref)
    assert _first_pixels_ascend(out)


def test_raster_order_holds_on_a_large_image_labelled_in_parallel() -> None:
    mask = _blobs((2048, 2048), 7)
    out = label(mask)
    assert out.max() > 1000 and _first_pixels_ascend(out)


def _spiral(n: int) -> np.ndarray:
    """A square spiral of 1-px arms with 1-px gaps between them, in an (n+1, n+1) mask."""
    mask = np.zeros((n + 1, n + 1), bool)
    y = x = 0
    steps = [n, n] + [k for k in range(n - 2, 0, -2) for _ in (0, 1)]
    for i, length in enumerate(steps):
        dy, dx = ((0, 1), (1, 0), (0, -1), (-1, 0))[i % 4]
        for _ in range(length):
            mask[y, x] = True
            y, x = y + dy, x + dx
    mask[y, x] = True
    return mask


def test_a_spiral_is_one_object_and_a_cut_makes_two() -> None:
    mask = _spiral(40)
    assert mask.sum() > 400
    assert label(mask).max() == 1
    mask[0, 20] = False  # cut the outer arm
    out = label(mask)
    assert out.max() == 2 and out[0, 0] == 1 and out[0, 21] == 2


def test_min_size_removes_small_objects_and_renumbers() -> None:
    mask = np.zeros((10, 20), bool)
    mask[0, 0] = True  # 1 px
    mask[2:4, 2:4] = True  # 4 px
    mask[5:10, 10:15] = True  # 25 px
    assert label(mask).max() == 3
    out = label(mask, min_size=4)
    assert out.max() == 2 and out[0, 0] == 0 and out[2, 2] == 1 and out[5, 10] == 2
    assert label(mask, min_size=26).max() == 0
    with pytest.raises(InputError, match="min_size"):
        label(mask, min_size=-1)


def test_min_size_in_pixels_and_square_micrometres() -> None:
    assert MinSize.parse("20px") == MinSize(20, "px") == MinSize.parse(20)
    assert MinSize.parse("2um2") == MinSize(2, "um2") == MinSize.parse("2 µm²")
    assert MinSize.parse("2.5e1 px").pixels() == 25
    cal = Calibration(0.5, 0.25, "µm")  # 0.125 um2 per pixel
    assert pixel_area_um2(cal) == 0.125
    assert MinSize.parse("2um2").pixels(cal) == 16  # 16 x 0.125 = 2: kept
    assert MinSize.parse("2.01um2").pixels(cal) == 17
    assert MinSize.parse("0.001 um2").pixels(Calibration(4.0, 4.0, "nm")) == 63
    with pytest.raises(InputError, match="pixel size"):
        MinSize.parse("2um2").pixels(None)
    for bad in ("2cm", "px", "-3", "1e999"):
        with pytest.raises(InputError, match="minimum object size"):
            MinSize.parse(bad)


def test_label_classes_converts_min_size_with_the_calibration() -> None:
    classes = np.zeros((12, 12), np.uint8)
    classes[0:2, 0:2] = 1  # 4 px = 1 um2 at 0.5 um pixels
    classes[5:10, 5:10] = 1  # 25 px = 6.25 um2
    cal = Calibration(0.5, 0.5, "µm")
    assert label_classes(classes, [1]).max() == 2
    assert label_classes(classes, [1], min_size="2um2", calibration=cal).max() == 1
    assert label_classes(classes, [1], min_size="4px").max() == 2
    stack = label_classes(np.stack([classes, classes[::-1]]), [1], min_size=5)
    assert stack.shape == (2, 12, 12) and stack[0].max() == stack[1].max() == 1


def test_stack_is_labelled_slice_by_slice_unless_3d() -> None:
    mask = np.zeros((3, 6, 6), bool)
    mask[0, 1:3, 1:3] = True
    mask[1, 2:4, 2:4] = True  # overlaps slice 0's object in 3-D
    mask[2, 4:6, 4:6] = True
    mask[2, 0, 0] = True
    out = label_stack(mask)
    assert out.dtype == np.uint32 and [int(p.max()) for p in out] == [1, 1, 2]
    assert out[2, 0, 0] == 1 and out[2, 4, 4] == 2  # ids per slice, in raster order
    pytest.importorskip("scipy", reason="3-D labels use scipy.ndimage")
    three = label_stack(mask, three_d=True)
    assert three.max() == 3 and three[0, 1, 1] == three[1, 2, 2] == 1
    assert three[2, 0, 0] == 2 and three[2, 4, 4] == 3
    assert label_stack(mask, three_d=True, min_size=2).max() == 2


def test_bad_masks_are_refused() -> None:
    with pytest.raises(InputError, match=r"bool \(H, W\)"):
        label(np.zeros((4, 4), np.uint8))
    with pytest.raises(InputError, match=r"bool \(Z, H, W\)"):
        label_stack(np.zeros((4, 4), bool))
    with pytest.raises(Exception, match="split method"):
        label(np.zeros((4, 4), bool), split="voronoi")


def _touching_cores() -> tuple[np.ndarray, np.ndarray]:
    """Two 10 x 10 squares that touch, as a three-class model draws them: cores (class 1)
    with 2-px border bands (class 2) where they meet, and the true instances."""
    truth = np.zeros((20, 30), np.uint32)
    truth[5:15, 5:15] = 1
    truth[5:15, 15:25] = 2
    classes = (truth > 0).astype(np.uint8)
    classes[5:15, 13:17] = 2  # the band: 2 px on each side of the contact
    return classes, truth


def test_border_pixels_go_back_to_the_object_they_border() -> None:
    classes, truth = _touching_cores()
    cores = label_classes(classes, (1,))
    assert cores.max() == 2 and (cores > 0).sum() == truth.astype(bool).sum() - 40
    whole = label_classes(classes, (1,), border_classes=(2,))
    assert np.array_equal(whole, truth)  # each band pixel to the nearer core: the contact line
    assert whole.dtype == np.uint32


def test_a_border_pixel_far_from_every_object_stays_background() -> None:
    from unet_edge.objects.labels import BORDER_REACH_PX, give_border

    labels = np.zeros((30, 30), np.uint32)
    labels[10:20, 10:13] = 7
    border = np.zeros((30, 30), bool)
    border[15, 13 + int(BORDER_REACH_PX) - 1] = True  # within reach
    border[15, 13 + int(BORDER_REACH_PX) + 2] = True  # beyond it
    border[12, 11] = True  # already an object pixel: unchanged
    out = give_border(labels, border)
    assert out[15, 13 + int(BORDER_REACH_PX) - 1] == 7
    assert out[15, 13 + int(BORDER_REACH_PX) + 2] == 0
    assert out[12, 11] == 7 and np.array_equal(labels[labels > 0], out[labels > 0])
    assert labels[15, 13 + int(BORDER_REACH_PX) - 1] == 0  # the input is not changed


def test_border_is_given_back_after_the_minimum_size_and_slice_by_slice() -> None:
    classes, truth = _touching_cores()
    classes[0, 0] = 1  # a 1-px speck, dropped by the minimum before any growing
    classes[1, 0] = 2
    out = label_classes(classes, (1,), min_size=5, border_classes=(2,))
    assert out[0, 0] == 0 and out[1, 0] == 0 and np.array_equal(out, truth)
    stack = label_classes(
        np.stack([classes, np.zeros_like(classes)]), (1,), min_size=5, border_classes=(2,)
    )
    assert np.array_equal(stack[0], truth) and stack[1].max() == 0


def test_give_border_refuses_mismatched_inputs() -> None:
    from unet_edge.objects.labels import give_border

    with pytest.raises(InputError, match="same shape"):
        give_border(np.zeros((4, 4), np.uint32), np.zeros((4, 5), bool))
    with pytest.raises(InputError, match="integer"):
        give_border(np.zeros((4, 4), np.float32), np.zeros((4, 4), bool))
    empty = give_border(np.zeros((4, 4), np.uint32), np.ones((4, 4), bool))
    assert empty.max() == 0  # no object to give the border to


def test_min_size_text_reads_back() -> None:
    for text in ("10px", "2.5um2", "0px"):
        assert str(MinSize.parse(text)) == text
        assert MinSize.parse(str(MinSize.parse(text))) == MinSize.parse(text)
