"""objects/split_blocks.py: the watershed split band by band equals ``label(mask,
split="watershed")`` id for id, on masks of touching discs cut into odd windows."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from unet_edge.errors import InputError
from unet_edge.objects.labels import label
from unet_edge.objects.merge import BlockMerge, Numbering
from unet_edge.objects.split_blocks import BandSplit


def touching_discs(h: int, w: int, seed: int) -> np.ndarray:
    """Pairs of discs 4-9 px in radius that overlap into peanuts (a split each), some
    touching other pairs into clumps; bool (h, w)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((h, w), np.uint8)
    for _ in range(max(3, h * w // 700)):
        y, x = (int(v) for v in rng.integers(0, (h, w)))
        r1, r2 = (int(v) for v in rng.integers(4, 10, 2))
        angle = rng.uniform(0, 2 * np.pi)
        gap = r1 + r2 - int(rng.integers(2, 5))
        cv2.circle(mask, (x, y), r1, 1, -1)
        x2, y2 = int(x + gap * np.cos(angle)), int(y + gap * np.sin(angle))
        cv2.circle(mask, (x2, y2), r2, 1, -1)
    return mask.astype(bool)


def merged(
    mask: np.ndarray, window: tuple[int, int], min_size: int
) -> tuple[BlockMerge, Numbering]:
    """``mask`` labelled window by window (pass 1), with boxes."""
    h, w = mask.shape
    merge = BlockMerge((h, w), min_size, boxes=True)
    for t in range(0, h, window[0]):
        for lf in range(0, w, window[1]):
            region = (t, lf, min(window[0], h - t), min(window[1], w - lf))
            merge.add(region, mask[t : t + region[2], lf : lf + region[3]])
    return merge, merge.finish()


def final_bands(merge: BlockMerge, mask: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(top, final labels) of each row of windows, as pass 2 reads them."""
    rows: dict[int, list[tuple[int, int, int, int]]] = {}
    for region in merge.blocks:
        rows.setdefault(region[0], []).append(region)
    for top, regions in rows.items():
        band = np.zeros((regions[0][2], mask.shape[1]), np.uint32)
        for t, lf, h, w in regions:
            band[:, lf : lf + w] = merge.relabel((t, lf, h, w), mask[t : t + h, lf : lf + w])
        yield top, band


@pytest.mark.parametrize(
    ("shape", "window", "min_size", "seed"),
    [
        ((150, 170), (16, 32), 0, 0),
        ((97, 211), (7, 13), 12, 1),
        ((233, 64), (61, 5), 30, 2),
        ((120, 120), (1, 120), 0, 3),
        ((80, 300), (80, 17), 5, 4),
    ],
)
def test_band_split_equals_the_whole_image(shape, window, min_size, seed):
    mask = touching_discs(*shape, seed)
    want = label(mask, min_size=min_size, split="watershed")
    merge, numbering = merged(mask, window, min_size)
    assert numbering.boxes is not None and numbering.first is not None
    split = BandSplit(shape, numbering.boxes, numbering.first)
    assert split.count(final_bands(merge, mask)) == int(want.max())
    got = np.concatenate([b for _, b in split.bands(final_bands(merge, mask))])
    assert got.dtype == np.uint16 and np.array_equal(got, want)
    assert len(split.parts) >= 3  # clumps were split...
    tall = [o for o in split.parts if numbering.boxes[o, 2] - numbering.boxes[o, 0] >= window[0]]
    assert tall or window[0] > 60  # ...some of them across window rows


def test_the_boxes_and_first_pixels_of_the_merge_are_the_whole_images():
    mask = touching_discs(90, 110, 5)
    _, numbering = merged(mask, (13, 17), 9)
    whole = label(mask, min_size=9)
    assert numbering.boxes is not None and numbering.first is not None
    assert numbering.count == int(whole.max()) > 5
    firsts = np.unique(whole.ravel(), return_index=True)[1][1:]
    assert np.array_equal(numbering.first[1:], firsts)
    for obj in range(1, numbering.count + 1):
        ys, xs = np.nonzero(whole == obj)
        assert list(numbering.boxes[obj]) == [ys.min(), xs.min(), ys.max(), xs.max()]


def test_an_object_taller_than_the_limit_is_refused():
    mask = np.zeros((60, 20), bool)
    mask[2:58, 5:8] = True
    _, numbering = merged(mask, (10, 10), 0)
    assert numbering.boxes is not None and numbering.first is not None
    with pytest.raises(InputError, match=r"object 1 is 56 rows tall.*at most 40 rows") as e:
        BandSplit((60, 20), numbering.boxes, numbering.first, max_rows=40)
    assert e.value.option == "split"
    with pytest.raises(InputError, match="count"):
        list(BandSplit((60, 20), numbering.boxes, numbering.first).bands(iter([])))
