"""objects/border_blocks.py: a border class given back block by block, band by band and chunk
by chunk equals ``give_border`` on the whole image, id for id, on images built to break it."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from unet_edge.errors import InputError
from unet_edge.objects.border_blocks import (
    HALO_PX,
    give_border_bands,
    give_border_blocks,
    measure_bands,
)
from unet_edge.objects.labels import give_border, label
from unet_edge.objects.measure import ObjectSums


def _sizes(total: int, rng: np.random.Generator, most: int) -> list[int]:
    """Random block sizes (1..most, odd ones included) that add up to ``total``."""
    sizes: list[int] = []
    while sum(sizes) < total:
        sizes.append(min(int(rng.integers(1, most + 1)), total - sum(sizes)))
    return sizes


def _classes(rng: np.random.Generator, h: int, w: int, blobby: bool) -> np.ndarray:
    """A random three-class mask (0 background, 1 object, 2 border): pixel noise or blobs."""
    if not blobby:
        return rng.choice(3, size=(h, w), p=[0.5, 0.3, 0.2]).astype(np.uint8)
    small = rng.choice(3, size=(h // 3 + 1, w // 3 + 1)).astype(np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def _tie_image() -> tuple[np.ndarray, np.ndarray]:
    """Objects on both sides of every block border of a 10 x 10 grid, with border pixels
    at equal distance from two objects (one on each side of a border) and on the corners."""
    h, w = 40, 40
    labels = np.zeros((h, w), np.uint32)
    n = 0
    for y in range(3, h, 10):  # a pair of dots around each horizontal and vertical border
        for x in range(3, w, 10):
            for dy, dx in ((0, 0), (0, 6), (6, 0), (6, 6)):
                n += 1
                labels[y + dy, x + dx] = n
    border = labels == 0  # every background pixel is border: ties everywhere
    return labels, border


def test_blocks_and_bands_equal_the_whole_image_on_random_grids():
    rng = np.random.default_rng(0)
    thin_halo_broke = 0
    for trial in range(120):
        h, w = (int(v) for v in rng.integers(20, 90, 2))
        classes = _classes(rng, h, w, blobby=bool(trial % 2))
        labels, border = label(classes == 1), classes == 2
        whole = give_border(labels, border)
        rows, cols = _sizes(h, rng, 25), _sizes(w, rng, 25)
        assert np.array_equal(give_border_blocks(labels, border, rows, cols), whole), trial
        bands, top = [], 0
        for r in rows:
            bands.append((labels[top : top + r], border[top : top + r]))
            top += r
        assert np.array_equal(np.concatenate(list(give_border_bands(bands))), whole), trial
        thin = give_border_blocks(labels, border, rows, cols, halo=2, check=False)
        thin_halo_broke += not np.array_equal(thin, whole)
    assert thin_halo_broke > 20  # the tests can fail: 2 px of halo is not enough


def test_ties_across_block_borders_and_on_corners():
    labels, border = _tie_image()
    whole = give_border(labels, border)
    assert (whole > 0).sum() > (labels > 0).sum() * 20  # the bands were given
    for rows, cols in (
        ([10] * 4, [10] * 4),
        ([7, 13, 9, 11], [11, 9, 13, 7]),
        ([1] * 40, [3] * 13 + [1]),
    ):
        got = give_border_blocks(labels, border, rows, cols)
        assert np.array_equal(got, whole), (rows, cols)
    bands = [(labels[t : t + 3], border[t : t + 3]) for t in range(0, 40, 3)]
    assert np.array_equal(np.concatenate(list(give_border_bands(bands))), whole)


def test_a_halo_too_thin_for_the_reach_is_refused():
    labels, border = _tie_image()
    with pytest.raises(InputError, match="halo of 3 px"):
        give_border_blocks(labels, border, [20, 20], [20, 20], halo=3)
    with pytest.raises(InputError, match="same rows"):
        list(give_border_bands([(labels, border[:-1])]))
    assert HALO_PX >= 7


def test_measure_bands_equals_measuring_the_whole_image():
    rng = np.random.default_rng(3)
    classes = _classes(rng, 61, 47, blobby=True)
    labels = give_border(label(classes == 1), classes == 2)
    prob = rng.random(labels.shape).astype(np.float32)
    raw = rng.integers(0, 4096, labels.shape).astype(np.uint16)
    want = ObjectSums().add(labels, prob=prob, raw=raw).table()
    sums = ObjectSums()
    tops = [0, 5, 6, 30, 61]
    bands = [labels[a:b] for a, b in itertools.pairwise(tops)]
    out = list(
        measure_bands(bands, sums, lambda t, h: prob[t : t + h], lambda t, h: raw[t : t + h])
    )
    assert all(a is b for a, b in zip(out, bands, strict=True))  # passed through
    got = sums.table()
    assert got.names == want.names
    for name in want.names:
        assert np.allclose(got[name], want[name], rtol=1e-12), name


def test_dask_give_border_equals_the_whole_image_with_thin_chunks():
    da = pytest.importorskip("dask.array")
    from unet_edge.objects.border_blocks import dask_give_border

    rng = np.random.default_rng(9)
    classes = _classes(rng, 83, 71, blobby=True)
    labels, border = label(classes == 1), classes == 2
    whole = give_border(labels, border)
    for chunks in ((20, 20), (17, 33), ((5, 40, 38), (30, 1, 40))):
        lazy = dask_give_border(da.from_array(labels, chunks=chunks), border)
        assert np.array_equal(lazy.compute(), whole), chunks
