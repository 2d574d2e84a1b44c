"""Tiling is pure geometry: an identity-like predictor must round-trip exactly."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unet_edge import tiling
from unet_edge.errors import ConfigError, InputError
from unet_edge.geometry import Geometry

AWKWARD = [
    (1, 1),
    (1, 2),
    (2, 1),
    (3, 5000),
    (5000, 3),
    (7, 13),
    (97, 101),
    (389, 388),
    (512, 512),
    (1009, 13),
]


def centre_crop_predictor(halo: int, crop: int = 0):
    """Acts like a valid network with this halo: output pixel = centre input pixel."""

    def predict(batch: np.ndarray) -> np.ndarray:
        h, w = batch.shape[2:]
        out = batch[:, :, halo : h - halo, halo : w - halo]
        if crop:  # same padding: the network returns the full tile
            out = batch
        return out.copy()

    return predict


@pytest.mark.parametrize("shape", AWKWARD)
@pytest.mark.parametrize("tile", [204, 236, 572])
def test_identity_round_trip(shape: tuple[int, int], tile: int) -> None:
    g = Geometry()
    rng = np.random.default_rng(sum(shape))
    image = rng.random((2, *shape), dtype=np.float32)
    plan = tiling.plan(shape, g, tile)
    out = tiling.run_tiled(image, plan, centre_crop_predictor(g.halo), classes=2, batch_size=3)
    assert np.array_equal(out, image)


@pytest.mark.parametrize("shape", [(1, 1), (37, 500), (300, 301)])
def test_identity_round_trip_same_padding(shape: tuple[int, int]) -> None:
    g = Geometry(depth=3, padding="same")
    image = np.random.default_rng(0).random((1, *shape), dtype=np.float32)
    plan = tiling.plan(shape, g, g.min_input + 2 * g.alignment)
    out = tiling.run_tiled(image, plan, centre_crop_predictor(g.halo, crop=g.halo), 1)
    assert np.array_equal(out, image)


@settings(max_examples=80, deadline=None)
@given(
    h=st.integers(1, 3000), w=st.integers(1, 3000), k=st.integers(1, 30), depth=st.integers(1, 5)
)
def test_plan_invariants(h: int, w: int, k: int, depth: int) -> None:
    g = Geometry(depth=depth)
    tile = g.min_input + k * g.alignment
    p = tiling.plan((h, w), g, tile)
    for ax, size in ((p.y, h), (p.x, w)):
        assert all(o % g.alignment == 0 for o in ax.origins)  # exactness needs this
        assert ax.origins[-1] + ax.out >= size  # full coverage
        assert ax.pad_before == g.halo and ax.pad_after >= g.halo
        owned = [ax.owned(i) for i in range(ax.count)]
        assert owned[0][0] == 0 and owned[-1][1] == size
        assert all(a[1] == b[0] for a, b in itertools.pairwise(owned))  # no gaps
        assert all(0 < b - a <= ax.out for a, b in owned)
        assert g.is_legal(ax.tile) and ax.tile <= tile


def test_small_tile_cannot_stitch() -> None:
    g = Geometry()
    with pytest.raises(ConfigError, match="at least 204"):
        tiling.plan((100, 100), g, 188)
    assert tiling.plan((4, 4), g, 188).n_tiles == 1  # one tile needs no stitching


def test_mirror_is_symmetric_and_defined_for_one_pixel() -> None:
    g = Geometry(depth=1)
    img = np.arange(3, dtype=np.float32).reshape(1, 3)
    p = tiling.plan((1, 3), g, g.min_input)
    padded = tiling.read_mirrored(tiling.array_reader(img), (1, 3), p.halo, 0, 0, p.padded_shape)
    row = padded[p.y.pad_before, :]
    expect = np.pad(img, ((0, 0), (p.x.pad_before, p.x.pad_after)), mode="symmetric")[0]
    assert np.array_equal(row, expect)
    # ... which is OpenCV's BORDER_REFLECT, the project's one convention
    cv = cv2.copyMakeBorder(img, 0, 0, p.x.pad_before, p.x.pad_after, tiling.CV2_BORDER)[0]
    assert np.array_equal(row, cv)
    one = tiling.read_mirrored(
        tiling.array_reader(np.ones((1, 1), np.float32)), (1, 1), p.halo, 0, 0, p.tile_shape
    )
    assert one.shape == p.tile_shape and np.all(one == 1)


def test_kernel_region_equals_whole_image_region() -> None:
    """Any rectangle computed alone equals the same rectangle of the whole image's result."""
    g = Geometry(depth=2)
    rng = np.random.default_rng(3)
    image = rng.random((157, 211), dtype=np.float32)
    p = tiling.plan(image.shape, g, 92)
    prepare = tiling._chw_to_float

    def predict(b: np.ndarray) -> np.ndarray:
        return centre_crop_predictor(g.halo)(b)

    whole = tiling.TileRun(p, tiling.array_reader(image[:, :, None]), prepare, 1, 3).run(predict)
    region = (13, 40, 70, 101)
    part = tiling.TileRun(p, tiling.array_reader(image[:, :, None]), prepare, 1, 2, region).run(
        predict
    )
    t, left, h, w = region
    assert np.array_equal(part, whole[:, t : t + h, left : left + w])
    windows = [(0, 0, 157, 100), (0, 100, 157, 111)]
    pieces = [
        tiling.TileRun(p, tiling.array_reader(image[:, :, None]), prepare, 1, 1, w).run(predict)
        for w in windows
    ]
    assert np.array_equal(np.concatenate(pieces, axis=2), whole)


def test_choose_tile_cost_model() -> None:
    g = Geometry()
    # An image that fits one tile gets exactly the tile that covers it.
    assert tiling.choose_tile((512, 512), g) == (700, 700)
    # Large images get large tiles (less halo work), bounded by max_tile.
    th, tw = tiling.choose_tile((4096, 4096), g, max_tile=1024)
    assert th <= 1024 and tw <= 1024 and th >= 900
    chosen = tiling.plan((4096, 4096), g, (th, tw)).computed_pixels()
    assert chosen <= tiling.plan((4096, 4096), g, 572).computed_pixels()
    # A strip keeps its short side small.
    assert tiling.choose_tile((3, 5000), g)[0] == 188


def test_plan_rejects_empty_and_bad_tiles() -> None:
    g = Geometry()
    with pytest.raises(InputError):
        tiling.plan((0, 5), g, 572)
    with pytest.raises(ConfigError, match="tile"):
        tiling.plan((5, 5), g, 570)
    assert "grid=2x2" in repr(tiling.plan((512, 512), g, 572))
