"""Any camera, same mask: bit depths, floats and exposure changes (the normalisation contract).

The shipped model normalises each image by its own percentiles, so a slice
gives the same mask whatever container, bit depth, gain or offset it arrives
in. Models with a fixed-range normalisation refuse input that does not fit
their range unless told the camera's range. Statistics are taken once per
image, and the windowed and Dask paths take the same ones as the in-memory
path.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import onnx_models
import pytest
import tifffile
from bench_fixtures import load_benchmark

from unet_edge import InputError, Normalization, Segmenter, processing
from unet_edge.config import NormMode
from unet_edge.io import read_image, read_provenance
from unet_edge.paths.windowed import segment_large

SLICES = ("20", "21", "22", "23", "24")


@pytest.fixture(scope="module")
def shipped() -> Iterator[Segmenter]:
    with Segmenter() as seg:
        yield seg


def camera_variants() -> ModuleType:
    """benchmarks/camera_invariance.py: the variants, shared with the README's table."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "camera_invariance.py"
    if not path.is_file():
        pytest.skip("benchmarks/camera_invariance.py is not here (tests run outside the tree)")
    return load_benchmark("camera_invariance")


def test_shipped_model_normalises_per_image(shipped: Segmenter) -> None:
    norm = shipped.info.normalization
    assert norm.mode is NormMode.PERCENTILE
    assert (norm.low, norm.high) == (5.0, 70.0) and norm.clip


@pytest.mark.slow
@pytest.mark.parametrize("name", SLICES)
def test_same_mask_from_any_camera(shipped: Segmenter, isbi: Path, name: str) -> None:
    im = read_image(isbi / "train" / "image" / f"{name}.png")
    ref = shipped.segment(im)
    assert 0.5 < ref.mean() < 0.95  # a real EM mask: mostly cell, not all one class
    agreement = {
        label: float((shipped.segment(v) == ref).mean())
        for label, v, required in camera_variants().variants(im)
        if required
    }
    assert len(agreement) == 15  # 4 containers/floats and 12-bit, 6 gains, 4 offsets
    low = {k: round(v, 4) for k, v in agreement.items() if v < 0.99}
    assert not low, f"slice {name}: pixels agreeing with the 8-bit mask below 99%: {low}"


def test_stream_normalises_each_frame_on_its_own(shipped: Segmenter, isbi_image: np.ndarray):
    crop = isbi_image[:200, :200]
    # one camera, three exposures: 12-bit, 14-bit and full-range values
    frames = [
        crop.astype(np.uint16) * 16,
        crop.astype(np.uint16) * 64,
        crop.astype(np.uint16) * 257,
    ]
    results = list(shipped.stream(frames, drop="none"))
    masks = [r.unwrap() for r in results]
    for frame, mask in zip(frames, masks, strict=True):
        assert np.array_equal(mask, shipped.segment(frame))
    # the same content at three exposures: the same mask
    assert np.array_equal(masks[0], masks[2]) and np.array_equal(masks[1], masks[2])


def _mosaic(isbi_image: np.ndarray) -> np.ndarray:
    """A 12-bit uint16 image whose halves differ in brightness (statistics are not local)."""
    im = np.concatenate([isbi_image[:, :300], np.clip(isbi_image[:, :300] * 0.6, 0, 255)], 1)
    return (im[:300].astype(np.uint16) * 16).astype(np.uint16)


def test_windowed_path_uses_whole_image_statistics(
    shipped: Segmenter, isbi_image: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A statistics sample smaller than the image: the strided read is exercised.
    monkeypatch.setattr(processing, "MAX_STAT_PIXELS", 10_000)
    image = _mosaic(isbi_image)
    assert processing.stat_step(image.shape) > 1
    src = tmp_path / "mosaic.tif"
    tifffile.imwrite(src, image)
    seg = Segmenter(tile=284)  # several network tiles and output windows
    whole = seg.scaling_for(image)
    window = seg.scaling_for(image[:, :300])
    assert window != whole  # a window alone would be normalised differently
    out = segment_large(seg, src, tmp_path / "mask.tif")
    in_memory = processing.mask_to_image(seg.segment(image), 2)
    assert np.array_equal(tifffile.imread(out), in_memory)
    assert read_provenance(out)["normalization"] == [whole.to_dict()]


def test_dask_path_uses_whole_image_statistics(
    shipped: Segmenter, isbi_image: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    da = pytest.importorskip("dask.array")
    from unet_edge.paths.dask import segment_dask

    monkeypatch.setattr(processing, "MAX_STAT_PIXELS", 10_000)
    image = _mosaic(isbi_image)
    seg = Segmenter(tile=284)
    lazy = segment_dask(da.from_array(image, chunks=150), segmenter=seg, chunk=200)
    assert np.array_equal(lazy.compute(scheduler="sync"), seg.segment(image))


def test_statistics_sample_is_the_same_grid_for_every_reader(tmp_path: Path) -> None:
    from unet_edge.io import TiffWindows

    image = np.random.default_rng(0).integers(0, 4096, (3000, 1500), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "a.tif", image)
    s = processing.stat_step(image.shape)
    assert s == 2
    expected = image[::s, ::s]
    assert np.array_equal(processing.stat_sample(image), expected)
    assert np.array_equal(processing.stat_sample(TiffWindows(tmp_path / "a.tif")), expected)
    tifffile.imwrite(tmp_path / "z.tif", image, compression="zlib", tile=(256, 256))
    pytest.importorskip("zarr")
    assert np.array_equal(processing.stat_sample(TiffWindows(tmp_path / "z.tif")), expected)


# -- models with a fixed-range normalisation ------------------------------------------------


@pytest.fixture(scope="module")
def fixed_range(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model whose normalisation divides by the dtype's maximum (as older exports do)."""
    path = tmp_path_factory.mktemp("fixed") / "fixed.onnx"
    return onnx_models.save(path, normalization=Normalization(mean=0.5, std=0.25))


def test_fixed_range_model_refuses_12_bit_frames(fixed_range: Path, isbi_image: np.ndarray):
    seg = Segmenter(fixed_range)
    frame = isbi_image[:100, :100].astype(np.uint16) * 16
    with pytest.raises(InputError, match=r"12 bits.*bit_depth=12"):
        seg.segment(frame)
    with pytest.raises(InputError, match="12 bits"):
        next(iter(seg.stream([frame]))).unwrap()


def test_fixed_range_model_told_the_bit_depth(fixed_range: Path, isbi_image: np.ndarray):
    frame8 = isbi_image[:100, :100]
    ref = Segmenter(fixed_range).predict(frame8)
    for kw in ({"bit_depth": 12}, {"input_range": (0, 4080)}):
        got = Segmenter(fixed_range, **kw).predict(frame8.astype(np.uint16) * 16)
        # 4095 vs 255 * 16 = 4080 full scale: a 0.4% gain at most
        assert np.max(np.abs(got - ref)) < 0.05, kw
    exact = Segmenter(fixed_range, input_range=(0, 4080)).predict(frame8.astype(np.uint16) * 16)
    np.testing.assert_allclose(exact, ref, atol=1e-5)
    with pytest.raises(InputError, match="not both"):
        Segmenter(fixed_range, bit_depth=12, input_range=(0, 4095))
    with pytest.raises(InputError, match="bit_depth"):
        Segmenter(fixed_range, bit_depth=0)


def test_fixed_range_model_refuses_values_beyond_its_range(
    fixed_range: Path, isbi_image: np.ndarray
) -> None:
    seg = Segmenter(fixed_range)
    as_255 = isbi_image[:100, :100].astype(np.float32)
    with pytest.raises(InputError, match=r"exceed the range 0\.\.1"):
        seg.segment(as_255)
    told = Segmenter(fixed_range, input_range=(0, 255)).segment(as_255)
    assert np.array_equal(told, seg.segment(isbi_image[:100, :100]))
    too_bright = isbi_image[:100, :100].astype(np.uint16) * 16
    with pytest.raises(InputError, match="exceed"):
        Segmenter(fixed_range, bit_depth=8).segment(too_bright)


def test_full_range_16_bit_is_accepted_by_fixed_range_models(
    fixed_range: Path, isbi_image: np.ndarray
) -> None:
    seg = Segmenter(fixed_range)
    a = seg.predict(isbi_image[:100, :100])
    b = seg.predict(isbi_image[:100, :100].astype(np.uint16) * 257)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_provenance_records_the_statistics(shipped: Segmenter, isbi_image: np.ndarray) -> None:
    frame = isbi_image[:128, :128].astype(np.uint16) * 16
    p = shipped.analyze(frame)
    norm = shipped.info.normalization
    lo, hi = np.percentile(frame, (norm.low, norm.high))
    assert p.stats == ({"low": [lo], "high": [hi], "source": "percentile"},)
    stack = shipped.analyze(np.stack([frame, frame // 2]))
    assert len(stack.stats) == 2 and stack.stats[1]["high"][0] == pytest.approx(hi / 2, rel=1e-3)
