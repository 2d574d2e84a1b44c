"""Block-wise labelling (objects/merge.py) equals whole-image labelling, id for id, on images
built to break it, and its measurements equal the whole image's."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from unet_edge.errors import ConfigError, InputError
from unet_edge.objects.labels import label
from unet_edge.objects.measure import ObjectSums
from unet_edge.objects.merge import BlockMerge, check_local, label_blocks, roots


def _spiral(n: int) -> np.ndarray:
    """A 1-px wide square spiral with 1-px gaps: one component winding through every block."""
    m = np.zeros((n, n), bool)
    y = x = d = turns = 0
    m[0, 0] = True
    steps = ((0, 1), (1, 0), (0, -1), (-1, 0))
    while turns < 2:
        dy, dx = steps[d]
        ny, nx, ay, ax = y + dy, x + dx, y + 2 * dy, x + 2 * dx
        free = 0 <= ny < n and 0 <= nx < n and not m[ny, nx]
        if free and not (0 <= ay < n and 0 <= ax < n and m[ay, ax]):
            y, x, turns = ny, nx, 0
            m[y, x] = True
        else:
            d, turns = (d + 1) % 4, turns + 1
    return m


def _comb(h: int, w: int) -> np.ndarray:
    """One component crossing every block: a spine on row 0, teeth down every 3rd column."""
    m = np.zeros((h, w), bool)
    m[0] = True
    m[:, ::3] = True
    return m


def _checker(h: int, w: int) -> np.ndarray:
    """Pixels touching only at corners: with 4-connectivity every pixel is an object."""
    return (np.indices((h, w)).sum(0) % 2).astype(bool)


def _diagonal(n: int) -> np.ndarray:
    """A 1-px diagonal line: n objects (4-connectivity), each crossing no border."""
    return np.eye(n, dtype=bool)


def _corners(h: int, w: int, rows: Sequence[int], cols: Sequence[int]) -> np.ndarray:
    """2x2 squares centred on every block corner (each one object over four blocks), and
    diagonal pairs meeting only at a corner (two objects each)."""
    m = np.zeros((h, w), bool)
    for y in np.cumsum(rows)[:-1]:
        for x in np.cumsum(cols)[:-1]:
            m[y - 1 : y + 1, x - 1 : x + 1] = True
            if y + 3 < h and x + 3 < w:
                m[y + 1, x + 2] = m[y + 2, x + 3] = True  # diagonal neighbours: two objects
    return m


def _blocks(size: int, step: int) -> list[int]:
    return [step] * (size // step) + ([size % step] if size % step else [])


CASES = {
    "spiral": (_spiral(61), [7, 13, 17, 11, 13], [5, 29, 1, 26]),
    "comb": (_comb(50, 73), [1, 16, 33], _blocks(73, 8)),
    "checker": (_checker(33, 35), _blocks(33, 4), _blocks(35, 3)),
    "diagonal": (_diagonal(40), _blocks(40, 7), _blocks(40, 9)),
    "corners": (_corners(64, 64, [16] * 4, [16] * 4), [16] * 4, [16] * 4),
    "one block": (_spiral(21), [21], [21]),
    "1-px blocks": (_comb(9, 11), [1] * 9, [1] * 11),
    "empty": (np.zeros((20, 30), bool), [7, 13], [30]),
    "full": (np.ones((20, 30), bool), [7, 13], [11, 19]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_blocks_equal_whole_image_id_for_id(name: str) -> None:
    mask, rows, cols = CASES[name]
    want = label(mask)
    got = label_blocks(mask, rows, cols)
    assert np.array_equal(got, want), name
    if name == "diagonal":
        assert want.max() == 40  # a diagonal line is 40 objects, not one
    if name in ("spiral", "comb", "full"):
        assert want.max() == 1


def test_random_masks_and_odd_grids() -> None:
    rng = np.random.default_rng(7)
    for _ in range(60):
        h, w = (int(v) for v in rng.integers(1, 80, 2))
        mask = rng.random((h, w)) < rng.uniform(0.2, 0.8)
        rows = _blocks(h, int(rng.integers(1, h + 1)))
        cols = _blocks(w, int(rng.integers(1, w + 1)))
        size = int(rng.integers(0, 6))
        assert np.array_equal(label_blocks(mask, rows, cols, size), label(mask, min_size=size))


def test_min_size_counts_the_whole_object() -> None:
    # a 6-px bar split 3 + 3 by a block border is kept by min_size 5; a 4-px one is not
    mask = np.zeros((4, 10), bool)
    mask[1, 2:8] = True
    mask[3, 3:7] = True
    got = label_blocks(mask, [4], [5, 5], min_size=5)
    assert np.array_equal(got, label(mask, min_size=5)) and got.max() == 1
    assert (got[1, 2:8] == 1).all() and not got[3].any()


def _measured(mask: np.ndarray, rows: list[int], cols: list[int], min_size: int = 0) -> tuple:
    rng = np.random.default_rng(1)
    prob = rng.random(mask.shape).astype(np.float32)
    raw = rng.integers(0, 4096, (*mask.shape, 2))
    merge = BlockMerge(mask.shape, min_size, measure=True, channels=2)
    top = 0
    for h in rows:
        left = 0
        for w in cols:
            win = np.s_[top : top + h, left : left + w]
            merge.add((top, left, h, w), mask[win], prob=prob[win], raw=raw[win])
            left += w
        top += h
    whole = ObjectSums(2).add(label(mask, min_size=min_size), prob=prob, raw=raw)
    return merge.sums().table(), whole.table()


@pytest.mark.parametrize("name", ["spiral", "comb", "checker", "corners", "full", "empty"])
def test_measurements_equal_whole_image(name: str) -> None:
    mask, rows, cols = CASES[name]
    got, want = _measured(mask, rows, cols)
    assert got.names == want.names and len(got) == len(want)
    for col in want.names:
        if want[col].dtype.kind in "iu":  # counts, boxes, perimeters: exactly
            assert np.array_equal(got[col], want[col]), col
        else:  # float sums added in another order
            np.testing.assert_allclose(got[col], want[col], rtol=1e-12, err_msg=col)


def test_measurements_after_min_size() -> None:
    rng = np.random.default_rng(3)
    mask = rng.random((57, 61)) < 0.55
    got, want = _measured(mask, [20, 20, 17], [9, 31, 21], min_size=4)
    assert np.array_equal(got["label"], want["label"]) and len(got) > 10
    assert np.array_equal(got["perimeter_px"], want["perimeter_px"])
    np.testing.assert_allclose(got["mean_intensity_c1"], want["mean_intensity_c1"], rtol=1e-12)


def test_uint32_above_65535_objects() -> None:
    mask = np.zeros((520, 520), bool)
    mask[::2, ::2] = True  # 260 x 260 = 67,600 single pixels
    merge = BlockMerge(mask.shape)
    for top in range(0, 520, 260):
        for left in range(0, 520, 260):
            merge.add((top, left, 260, 260), mask[top : top + 260, left : left + 260])
    numbering = merge.finish()
    assert numbering.count == 67600 and numbering.dtype == np.uint32
    block = merge.relabel((260, 260, 260, 260), mask[260:, 260:])
    assert block.dtype == np.uint32 and np.array_equal(block, label(mask)[260:, 260:])
    small = BlockMerge((4, 4))
    small.add((0, 0, 4, 4), np.eye(4, dtype=bool))
    assert small.finish().dtype == np.uint16


def test_roots_resolve_chains_in_any_order() -> None:
    pairs = np.array([[5, 4], [2, 3], [4, 3], [7, 6], [1, 9]])
    r = roots(9, pairs)
    assert list(r) == [0, 1, 2, 2, 2, 2, 6, 6, 8, 1]


def test_blocks_out_of_order_are_refused() -> None:
    merge = BlockMerge((10, 10))
    with pytest.raises(InputError, match="expected top 0, left 0"):
        merge.add((0, 5, 5, 5), np.zeros((5, 5), bool))
    merge.add((0, 0, 5, 5), np.zeros((5, 5), bool))
    with pytest.raises(InputError, match="height 5"):
        merge.add((0, 5, 4, 5), np.zeros((4, 5), bool))
    with pytest.raises(InputError, match="up to row 0, column 5"):
        merge.finish()
    merge.add((0, 5, 5, 5), np.ones((5, 5), bool))
    merge.add((5, 0, 5, 10), np.ones((5, 10), bool))
    assert merge.finish().count == 1
    with pytest.raises(InputError, match="was not added"):
        merge.relabel((5, 0, 5, 5), np.ones((5, 5), bool))
    with pytest.raises(InputError, match="more than when it was first labelled"):
        merge.relabel((0, 0, 5, 5), np.eye(5, dtype=bool))  # 5 objects where there were 0
    with pytest.raises(InputError, match="without measure=True"):
        merge.sums()


def test_a_watershed_is_block_wise_now_an_unknown_split_is_refused() -> None:
    check_local(None)
    check_local("watershed")  # split in a second pass (objects.split_blocks)
    with pytest.raises(ConfigError, match="unknown split method 'voronoi'"):
        check_local("voronoi")
