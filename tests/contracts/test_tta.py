"""Test-time augmentation: tiled TTA equals whole-image TTA on every path (predict, stream,
windows, Dask), for valid and same-padded models; warm-up, provenance and the CLI flag."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from unet_edge import io, processing, tiling
from unet_edge.cli import main
from unet_edge.errors import InputError
from unet_edge.paths.windowed import run_region, segment_large
from unet_edge.runtime import Segmenter

Array = np.ndarray

# The 8 flips and rotations of an (..., H, W) array and their inverses, written out one by
# one (not with tiling.DIHEDRAL), so the reference does not share the code under test.
D4: list[tuple[Callable[[Array], Array], Callable[[Array], Array]]] = [
    (lambda a: a, lambda a: a),
    (lambda a: a[..., ::-1], lambda a: a[..., ::-1]),
    (lambda a: a[..., ::-1, :], lambda a: a[..., ::-1, :]),
    (lambda a: a[..., ::-1, ::-1], lambda a: a[..., ::-1, ::-1]),
    (lambda a: np.swapaxes(a, -1, -2), lambda a: np.swapaxes(a, -1, -2)),
    (
        lambda a: np.swapaxes(a, -1, -2)[..., ::-1, ::-1],
        lambda a: np.swapaxes(a[..., ::-1, ::-1], -1, -2),
    ),
    (lambda a: np.swapaxes(a, -1, -2)[..., ::-1], lambda a: np.swapaxes(a[..., ::-1], -1, -2)),
    (
        lambda a: np.swapaxes(a, -1, -2)[..., ::-1, :],
        lambda a: np.swapaxes(a[..., ::-1, :], -1, -2),
    ),
]


def whole_image_tta(seg: Segmenter, image: Array) -> Array:
    """The average over D4 of the network on the whole mirror-padded image (one pass each)."""
    x = processing.normalize(image, seg.info.normalization, seg.info.channels)
    h, w = x.shape[1:]
    p = tiling.whole_image_plan((h, w), seg.geometry)
    padded = np.pad(
        x,
        ((0, 0), (p.halo, p.y.pad_after), (p.halo, p.x.pad_after)),
        mode="symmetric",
    )
    assert padded.shape[1:] == p.tile_shape
    total = np.zeros((seg.info.classes, *padded.shape[1:]), np.float64)
    for forward, back in D4:
        y = seg.run_batch(np.ascontiguousarray(forward(padded))[None])[0]
        out = back(y)
        total[:, : out.shape[1], : out.shape[2]] += out
    c = p.crop
    return (total / 8)[:, c : c + h, c : c + w].astype(np.float32)


def test_d4_table_is_the_group() -> None:
    a = np.arange(12.0).reshape(3, 4)
    seen = {forward(a).tobytes() + bytes(forward(a).shape) for forward, _ in D4}
    assert len(seen) == 8
    for forward, back in D4:
        assert np.array_equal(back(forward(a)), a)


def test_dihedral_average_of_an_equivariant_and_a_biased_predictor() -> None:
    batch = np.random.default_rng(0).random((2, 1, 6, 10), np.float32)
    same = tiling.dihedral_average(lambda b: np.concatenate([b, 1 - b], 1))(batch)
    assert same.shape == (2, 2, 6, 10) and np.allclose(same[:, 0], batch[:, 0])

    def ramp(b: Array) -> Array:  # not equivariant: weights each pixel by its column squared
        return b * np.arange(b.shape[-1], dtype=np.float32) ** 2

    got = tiling.dihedral_average(ramp)(batch)
    # a column counts from the left or the right; after a quarter turn a row does, from the
    # top or the bottom: each of the four twice
    cols, rows = np.arange(10.0) ** 2, np.arange(6.0)[:, None] ** 2
    weight = (2 * (cols + cols[::-1]) + 2 * (rows + rows[::-1])) / 8
    assert np.allclose(got, batch * weight, rtol=1e-5)


# (image shape, tile) pairs: tiny, prime, wide and tall strips; square and non-square tiles
VALID_CASES = [
    ((1, 1), 236),
    ((7, 13), 236),
    ((61, 53), (236, 300)),
    ((131, 97), 236),
    ((3, 700), (204, 300)),
    ((180, 150), (300, 236)),
]


@pytest.mark.parametrize(("shape", "tile"), VALID_CASES)
def test_tiled_tta_equals_whole_image_tta(
    tiny_onnx: Path, shape: tuple[int, int], tile: int | tuple[int, int]
) -> None:
    seg = Segmenter(tiny_onnx, tile=tile, batch_size=3, tta=True)
    image = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    got = seg.predict(image)
    ref = whole_image_tta(seg, image)
    assert got.shape == ref.shape == (2, *shape) and got.dtype == np.float32
    assert np.max(np.abs(got - ref)) <= 1e-5, (shape, tile, seg.plan_for(shape))
    plain = Segmenter(tiny_onnx, tile=tile).predict(image)
    assert np.max(np.abs(plain - ref)) > 1e-4  # the random net is not symmetric: TTA matters


@pytest.mark.parametrize(("shape", "tile"), [((45, 70), 128), ((90, 61), (128, 160))])
def test_same_padded_tiled_tta_equals_whole_image_tta(
    same_onnx: Path, shape: tuple[int, int], tile: int | tuple[int, int]
) -> None:
    """Same padding: the cropped margin must cover the zero padding in every orientation."""
    seg = Segmenter(same_onnx, tile=tile, batch_size=2, tta=True)
    assert seg.plan_for(shape).n_tiles > 1
    image = np.random.default_rng(7).integers(0, 256, shape, dtype=np.uint8)
    assert np.max(np.abs(seg.predict(image) - whole_image_tta(seg, image))) <= 1e-5


def test_stream_with_tta_equals_whole_image_tta(tiny_onnx: Path) -> None:
    seg = Segmenter(tiny_onnx, tile=(204, 236), tta=True)
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 4096, (70, 90), dtype=np.uint16) for _ in range(3)]
    results = list(seg.stream(iter(frames), drop="none", shape=(70, 90), probabilities=True))
    for frame, res in zip(frames, results, strict=True):
        assert res.probabilities is not None
        assert np.max(np.abs(res.probabilities - whole_image_tta(seg, frame))) <= 1e-5


def test_windows_with_tta_equal_whole_image_tta(tiny_onnx: Path, tmp_path: Path) -> None:
    """The windowed path: regions of the whole-image plan; a tiled TIFF written window by window."""
    seg = Segmenter(tiny_onnx, tile=(236, 268), tta=True)
    image = np.random.default_rng(5).integers(0, 256, (150, 170), dtype=np.uint8)
    ref = whole_image_tta(seg, image)
    plan, scaling = seg.plan_for(image.shape), seg.scaling_for(image)
    for region in [(0, 0, 150, 170), (17, 40, 60, 33), (100, 120, 50, 50)]:
        top, left, h, w = region
        got = run_region(seg, plan, tiling.array_reader(image), region, scaling)
        assert np.max(np.abs(got - ref[:, top : top + h, left : left + w])) <= 1e-5
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, image)
    out = segment_large(seg, src, tmp_path / "mask.tif")
    assert np.array_equal(tifffile.imread(out), processing.mask_to_image(seg.segment(image), 2))
    assert io.read_provenance(out)["tta"] is True


def test_dask_with_tta_equals_predict(tiny_onnx: Path) -> None:
    pytest.importorskip("dask.array", reason="the Dask path needs the [dask] extra")
    from unet_edge.paths.dask import segment_dask

    image = np.random.default_rng(9).integers(0, 256, (260, 330), dtype=np.uint8)
    seg = Segmenter(tiny_onnx, tile=300, tta=True)  # the workers' Segmenters do TTA too
    lazy = segment_dask(image, tiny_onnx, segmenter=seg, chunk=112, probabilities=True)
    assert len(lazy.chunks[1]) > 1 and len(lazy.chunks[2]) > 1
    got = lazy.compute(scheduler="threads")
    assert np.array_equal(got, seg.predict(image))
    assert np.max(np.abs(got - whole_image_tta(seg, image))) <= 1e-5


def test_warmup_runs_turned_tiles_and_provenance_records_tta(tiny_onnx: Path) -> None:
    seg = Segmenter(tiny_onnx, tile=(204, 300), tta=True)
    shapes: list[tuple[int, ...]] = []
    run = seg.run_batch
    seg.run_batch = lambda b: (shapes.append(b.shape), run(b))[1]  # type: ignore[method-assign]
    seg.warmup((500, 500))
    assert shapes == [(1, 1, 204, 300), (1, 1, 300, 204)]
    assert seg.provenance()["tta"] is True and "tta=True" in repr(seg)
    assert Segmenter(tiny_onnx).provenance()["tta"] is False
    with pytest.raises(InputError, match="tta"):
        Segmenter(tiny_onnx, tta="yes")  # type: ignore[arg-type]


def test_cli_run_tta(tiny_onnx: Path, tmp_path: Path) -> None:
    image = np.random.default_rng(2).integers(0, 256, (64, 80), dtype=np.uint8)
    src = io.write_tiff(tmp_path / "a.tif", image)
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["run", str(src), "-m", str(tiny_onnx), "-o", str(out), "--tta"])
    assert res.exit_code == 0, res.output
    mask = out / "a_mask.tif"
    assert io.read_provenance(mask)["tta"] is True
    seg = Segmenter(tiny_onnx, tta=True)
    want = processing.mask_to_image(seg.segment(image), 2)
    assert np.array_equal(io.read_image(mask), want)


def test_cli_evaluate_tta(tiny_onnx: Path, tmp_path: Path) -> None:
    pytest.importorskip("skimage", reason="the Rand and VI scores need the [eval] extra")
    rng = np.random.default_rng(4)
    for sub in ("img", "lab"):
        (tmp_path / sub).mkdir()
    io.write_png(tmp_path / "img" / "a.png", rng.integers(0, 256, (60, 70), dtype=np.uint8))
    io.write_png(
        tmp_path / "lab" / "a.png", np.where(rng.random((60, 70)) > 0.3, 255, 0).astype(np.uint8)
    )
    js = tmp_path / "s.json"
    args = ["evaluate", "-m", str(tiny_onnx), str(tmp_path / "img"), str(tmp_path / "lab")]
    res = CliRunner().invoke(main, [*args, "--tta", "--json", str(js)])
    assert res.exit_code == 0, res.output
    scores = json.loads(js.read_text())
    assert scores["tta"] is True
    mask = Segmenter(tiny_onnx, tta=True).segment(io.read_image(tmp_path / "img" / "a.png"))
    want = 1 - np.mean(mask == (io.read_image(tmp_path / "lab" / "a.png") > 0))
    assert scores["mean"]["pixel_error"] == pytest.approx(want)
