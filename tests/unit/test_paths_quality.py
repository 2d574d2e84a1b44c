"""paths/quality.py: the domain guard's score of a frame whose probabilities arrive region by
region (or as the parts a Dask chunk sends back) equals the score of the whole frame
(Guard.assess), exactly; Dask's lazy score too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx_models
import pytest

from unet_edge import Segmenter, domain
from unet_edge.config import UNetConfig
from unet_edge.errors import UnetEdgeError
from unet_edge.paths.quality import RegionQuality, WindowParts, dask_quality


def _frames() -> list[np.ndarray]:
    """Smooth, structured uint16 frames (cumulative sums of noise), 330 x 290."""
    rng = np.random.default_rng(3)
    return [
        (np.cumsum(np.cumsum(rng.random((330, 290)), 0), 1) * 40 % 4096).astype(np.uint16)
        for _ in range(3)
    ]


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random U-Net carrying the statistics of two of :func:`_frames`."""
    folder = tmp_path_factory.mktemp("quality")
    config = UNetConfig(base_width=2)
    with Segmenter(onnx_models.save(folder / "plain.onnx", config)) as seg:
        stats = domain.measure(seg, _frames()[:2], source="two frames")
    return onnx_models.save_edited(
        folder / "guarded.onnx", config, lambda d: d.update(domain=stats.to_dict())
    )


def test_regions_in_any_order_give_the_whole_frames_score_exactly(guarded: Path) -> None:
    frame = _frames()[2]
    with Segmenter(guarded) as seg:
        probs = seg.predict(frame)
        whole = seg.guard.assess(frame, seg.scaling_for(frame), probs)  # type: ignore[union-attr]
        quality = RegionQuality.of(seg, frame.shape)
    assert quality is not None and len(quality.windows) <= domain.MAX_PATCHES
    regions = [(t, s, 70, 50) for t in range(0, 330, 70) for s in range(0, 290, 50)]
    rng = np.random.default_rng(0)
    for i in rng.permutation(len(regions)):
        t, s, h, w = regions[i]
        h, w = min(h, 330 - t), min(w, 290 - s)
        quality.add((t, s, h, w), probs[:, t : t + h, s : s + w])
    quality.add((10, 10, 100, 100), probs[:, 10:110, 10:110])  # overlaps: the same values

    def read(t: int, s: int, h: int, w: int) -> np.ndarray:
        return frame[t : t + h, s : s + w]

    scored = quality.assess(read, seg.scaling_for(frame))
    assert scored == whole
    assert quality.record(read, seg.scaling_for(frame)) == [whole.to_dict()]


def test_the_score_is_refused_before_every_window_is_computed(guarded: Path) -> None:
    frame = _frames()[0]
    with Segmenter(guarded) as seg:
        probs = seg.predict(frame)
        quality = RegionQuality.of(seg, frame.shape)
    assert quality is not None
    quality.add((0, 0, 300, 290), probs[:, :300])  # the bottom 30 rows are missing
    assert not quality.complete
    with pytest.raises(UnetEdgeError, match="before all of its feature windows"):
        quality.assess(lambda t, s, h, w: frame[t : t + h, s : s + w], seg.scaling_for(frame))


def test_crops_are_the_parts_of_the_windows_in_a_region(guarded: Path) -> None:
    with Segmenter(guarded) as seg:
        quality = RegionQuality.of(seg, (330, 290))
    assert quality is not None
    parts = quality.crops((100, 0, 50, 290))
    assert parts and all(t >= 100 and t + h <= 150 for (t, _, h, _), _ in parts)
    assert all(r == (t - 100, s, h, w) for (t, s, h, w), r in parts)
    assert quality.crops((0, 0, 0, 0)) == []


def test_a_model_without_statistics_collects_nothing(tiny_onnx: Path) -> None:
    with Segmenter(tiny_onnx) as seg:
        assert RegionQuality.of(seg, (100, 100)) is None


def test_dask_quality_equals_the_in_memory_score(guarded: Path, tiny_onnx: Path) -> None:
    pytest.importorskip("dask.array", reason="needs the [dask] extra")
    import dask

    from unet_edge.paths.dask import segment_dask

    frame = _frames()[2]
    with Segmenter(guarded) as seg:
        expected = seg.analyze(frame).quality
        probs = segment_dask(frame, segmenter=seg, chunk=96, probabilities=True)
        mask, got = dask.compute(probs.argmax(0), dask_quality(probs, frame, seg))
    assert expected is not None and got == expected[0]
    assert mask.shape == frame.shape
    with Segmenter(tiny_onnx) as seg:
        probs = segment_dask(frame, segmenter=seg, chunk=96, probabilities=True)
        assert dask_quality(probs, frame, seg).compute() is None  # no statistics


def test_parts_with_their_raw_pixels_give_the_whole_frames_score_exactly(guarded: Path) -> None:
    frame = _frames()[1]
    with Segmenter(guarded) as seg:
        probs = seg.predict(frame)
        whole = seg.guard.assess(frame, seg.scaling_for(frame), probs)  # type: ignore[union-attr]
        quality = RegionQuality.of(seg, frame.shape)
    assert quality is not None

    def read(t: int, s: int, h: int, w: int) -> np.ndarray:
        return frame[t : t + h, s : s + w]

    parts = WindowParts(frame.shape, read)  # what a Dask chunk sends back
    for t in range(0, 330, 110):
        for s in range(0, 290, 100):
            h, w = min(110, 330 - t), min(100, 290 - s)
            parts.add((t, s, h, w), probs[:, t : t + h, s : s + w])
    assert all(raw.shape == p.shape[1:] for _, raw, p in parts.parts)
    quality.add_parts(parts.parts[:-1])
    assert not quality.complete
    quality.add_parts(parts.parts[-1:])
    assert quality.assess(None, seg.scaling_for(frame)) == whole  # no reader: the parts' pixels
