"""unet_edge.domain: features of what a model sees, training statistics, the score and verdict."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx_models
import pytest

from unet_edge import ModelError, Segmenter, domain, metadata
from unet_edge.config import Normalization, UNetConfig
from unet_edge.processing import Scaling

NORM = Normalization(mode="percentile", low=5.0, high=70.0, clip=True)
NAMES = ("membrane", "cell")


def _features(frame: np.ndarray, p_cell: float = 0.8) -> dict[str, float]:
    probs = np.empty((2, *frame.shape[:2]), np.float32)
    probs[1] = p_cell
    probs[0] = 1 - p_cell
    lo, hi = np.percentile(frame, (5, 70))
    scaling = Scaling((float(lo),), (float(max(hi, lo + 1)),), "percentile")
    return domain.frame_features(frame, scaling, NORM, probs, NAMES)


@pytest.mark.parametrize("shape", [(1, 1), (7, 300), (64, 64), (65, 1000), (4096, 129)])
def test_windows_lie_inside_the_frame_and_are_few(shape: tuple[int, int]) -> None:
    wins = domain.windows(*shape)
    assert 1 <= len(wins) <= domain.MAX_PATCHES
    for t, left, h, w in wins:
        assert t >= 0 and t + h <= shape[0] and left >= 0 and left + w <= shape[1]
        assert (h, w) == (min(domain.PATCH, shape[0]), min(domain.PATCH, shape[1]))


def test_features_tell_flat_from_noise_and_read_the_classes() -> None:
    rng = np.random.default_rng(0)
    flat = _features(np.full((300, 300), 50, np.uint8))
    noise = _features(rng.integers(0, 256, (300, 300)).astype(np.uint8), p_cell=0.3)
    assert flat["gradient"] == 0 and flat["flat"] == 1
    assert noise["gradient"] > 0.3 and noise["flat"] < 0.1
    assert noise["gradient"] > 2 * noise["gradient_coarse"]  # white noise averages out
    assert flat["class_cell"] == 1 and noise["class_membrane"] == 1
    assert flat["confidence"] == pytest.approx(0.8) and noise["confidence"] == pytest.approx(0.7)
    assert list(flat) == list(domain.feature_names(NAMES))


def test_features_refuse_probabilities_of_another_frame() -> None:
    with pytest.raises(ValueError, match=r"probabilities of shape \(2, 10, 10\)"):
        domain.frame_features(
            np.zeros((20, 20), np.uint8),
            Scaling((0.0,), (1.0,), "dtype"),
            NORM,
            np.zeros((2, 10, 10), np.float32),
            NAMES,
        )


def _stats(threshold: float = 6.0) -> domain.DomainStats:
    rows = [{"a": 0.5 + 0.01 * i, "class_cell": 0.7 + 0.002 * i} for i in range(-5, 6)]
    return domain.statistics(rows, threshold, "eleven rows")


def test_a_frame_like_the_training_images_is_in_the_domain() -> None:
    q = domain.score(_stats(), {"a": 0.52, "class_cell": 0.71})
    assert q.in_domain and q.score < 1 and q.reason == ""
    assert set(q.features) == {"a", "class_cell"}
    assert 50 < q.features["a"]["percentile"] < 100


def test_a_frame_far_out_is_flagged_with_the_feature_that_says_so() -> None:
    q = domain.score(_stats(), {"a": 0.5, "class_cell": 0.05})
    # class shares divide by at least CLASS_FLOOR: (0.05 - 0.7) / 0.02 = -32.5
    assert not q.in_domain and q.score == pytest.approx(32.5)
    assert q.features["class_cell"]["percentile"] == 0
    assert q.reason == "cell share 0.05, training 0.69..0.71"
    assert "cell share" in (domain.summary([q]) or "")


def test_features_the_statistics_do_not_know_are_left_out() -> None:
    q = domain.score(_stats(), {"a": 0.5, "other": 1e9})
    assert q.in_domain and set(q.features) == {"a"}


def test_statistics_round_trip_and_malformed_ones_are_refused() -> None:
    s = _stats(4.5)
    back = domain.DomainStats.from_dict(s.to_dict())
    assert back.threshold == 4.5 and back.images == 11 and back.source == "eleven rows"
    assert back.features["a"].mean == pytest.approx(s.features["a"].mean)
    bad = s.to_dict()
    bad["features"]["a"]["quantiles"] = [0.1]
    for broken in ({}, {**s.to_dict(), "version": 9}, {**s.to_dict(), "threshold": -1}, bad):
        with pytest.raises(ModelError, match="domain statistics"):
            domain.DomainStats.from_dict(broken)
    with pytest.raises(ValueError, match="at least one training image"):
        domain.statistics([])


def test_the_warning_names_the_file_the_model_and_the_worst_frame() -> None:
    inside = domain.score(_stats(), {"a": 0.5, "class_cell": 0.7})
    outside = domain.score(_stats(), {"a": 0.7, "class_cell": 0.7})
    assert domain.warning("x.tif", "em", [inside]) is None
    assert domain.warning("x.tif", "em", None) is None
    one = domain.warning("x.tif", "em", [outside])
    why = "score 6.3 > 6: a 0.7, training 0.45..0.55"
    assert one == f"x.tif looks unlike the training data of em ({why})"
    # provenance holds dicts: the same line from them
    assert domain.warning("x.tif", "em", [outside.to_dict()]) == one
    stack = domain.warning("s.tif", "em", [inside, outside, inside])
    assert stack is not None and "1 of 3 frames, worst frame 1: score 6.3" in stack


def _model_with_stats(path: Path, stats: domain.DomainStats | None) -> Path:
    config = UNetConfig(base_width=2)

    def edit(d: dict) -> None:
        if stats is not None:
            d["domain"] = stats.to_dict()

    return onnx_models.save_edited(path, config, edit)


def test_a_model_without_statistics_has_no_guard_and_no_quality(tmp_path: Path) -> None:
    with Segmenter(_model_with_stats(tmp_path / "old.onnx", None)) as seg:
        pred = seg.analyze(np.zeros((40, 40), np.uint8))
    assert seg.guard is None and pred.quality is None and pred.in_domain is None
    assert pred.quality_record() is None


def test_the_segmenter_scores_each_frame_against_its_models_statistics(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (60, 70)).astype(np.uint8) for _ in range(3)]
    path = _model_with_stats(tmp_path / "m.onnx", None)
    with Segmenter(path) as seg:
        stats = domain.measure(seg, frames[:2], threshold=6.0, source="two noise frames")
        names = seg.info.class_names
    assert stats.images == 2 and set(stats.features) == set(domain.feature_names(names))
    path = _model_with_stats(tmp_path / "guarded.onnx", stats)
    assert metadata.read(path).domain["source"] == "two noise frames"
    with Segmenter(path) as seg:
        one = seg.analyze(frames[2])
        stack = seg.analyze(np.stack([frames[0], np.full((60, 70), 9, np.uint8)]))
    assert one.quality is not None and len(one.quality) == 1
    assert stack.quality is not None and len(stack.quality) == 2
    assert stack.quality[0].in_domain and not stack.quality[1].in_domain
    assert stack.in_domain is False
    record = stack.quality_record()
    assert record is not None and record[1]["features"]["flat"]["value"] == 1.0


def test_malformed_statistics_are_refused_when_first_used(tmp_path: Path) -> None:
    config = UNetConfig(base_width=2)
    path = onnx_models.save_edited(
        tmp_path / "bad.onnx", config, lambda d: d.update(domain={"version": 1})
    )
    with Segmenter(path) as seg, pytest.raises(ModelError, match="statistics are malformed"):
        seg.analyze(np.zeros((40, 40), np.uint8))


@pytest.mark.parametrize("shape", [(1, 1), (1, 50), (50, 1), (2, 2), (3, 7), (5, 300)])
def test_features_of_tiny_and_thin_frames_are_finite(shape: tuple[int, int]) -> None:
    frame = np.random.default_rng(2).integers(0, 256, shape).astype(np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "mean of empty slice"
        feats = _features(frame)
    assert all(np.isfinite(v) for v in feats.values()), feats
