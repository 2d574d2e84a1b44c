"""Segmentation metrics and folder evaluation (torch-free)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from unet_edge.datasets import find_pairs, parse_names
from unet_edge.errors import DataError, InputError
from unet_edge.evaluate import (
    evaluate_predictions,
    foreground_components,
    mean_metrics,
    read_label,
    segmentation_metrics,
)

pytest.importorskip("skimage", reason="the metrics need scikit-image (the [eval] extra)")

ISBI = Path(__file__).resolve().parents[3] / "shared" / "data" / "isbi2012"
needs_isbi = pytest.mark.skipif(
    not (ISBI / "train" / "label").is_dir(),
    reason=f"ISBI 2012 data not found at {ISBI} (expected ../shared next to the repository)",
)


def grid_cells(n: int = 96, step: int = 16, membrane: int = 2) -> np.ndarray:
    """Square cells (class 1) separated by ``membrane``-px background lines (class 0)."""
    mask = np.ones((n, n), np.uint8)
    for k in range(0, n, step):
        mask[k : k + membrane] = 0
        mask[:, k : k + membrane] = 0
    return mask


def test_perfect_prediction_scores_zero_errors():
    truth = grid_cells()
    m = segmentation_metrics(truth, truth)
    for key in ("pixel_error", "rand_error", "rand_error_expanded", "vi", "vi_expanded"):
        assert m[key] == pytest.approx(0.0, abs=1e-9), key
    assert m["iou"] == 1.0 and m["dice"] == 1.0


def test_thicker_membranes_hurt_raw_rand_but_not_expanded():
    ndimage = pytest.importorskip("scipy.ndimage")
    truth = grid_cells()
    thick = ndimage.binary_erosion(truth, np.ones((3, 3))).astype(np.uint8)
    m = segmentation_metrics(thick, truth)
    assert m["pixel_error"] > 0.05
    assert m["rand_error"] > 0.05
    assert m["rand_error_expanded"] < 1e-9
    assert m["iou"] < 1.0


def test_a_missing_membrane_is_a_merge_in_both_rand_errors():
    truth = grid_cells()
    merged = truth.copy()
    merged[16:18, 2:16] = 1  # remove the membrane between two cells
    assert foreground_components(merged).max() == foreground_components(truth).max() - 1
    m = segmentation_metrics(merged, truth)
    assert m["rand_error_expanded"] > 0.005
    assert m["vi_merge_expanded"] > 0.01 and m["vi_split_expanded"] < 1e-9
    assert m["pixel_error"] == pytest.approx(28 / truth.size)


def test_metric_inputs_must_match():
    with pytest.raises(InputError, match="same shape"):
        segmentation_metrics(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(InputError, match="no per-image metrics"):
        mean_metrics([])


def test_evaluate_predictions_checks_sizes(tmp_path: Path):
    import cv2

    (tmp_path / "image").mkdir()
    (tmp_path / "label").mkdir()
    cv2.imwrite(str(tmp_path / "image" / "a.png"), np.zeros((10, 12), np.uint8))
    cv2.imwrite(str(tmp_path / "label" / "a.png"), np.zeros((10, 11), np.uint8))
    pairs = find_pairs(tmp_path / "image", tmp_path / "label")
    with pytest.raises(DataError, match=r"a\.png is 12x10 but its label .*a\.png is 11x10"):
        evaluate_predictions(pairs, lambda im: np.zeros(im.shape[:2], np.uint8))


@needs_isbi
def test_evaluating_the_truth_itself_is_perfect_and_torch_free():
    pairs = find_pairs(ISBI / "train" / "image", ISBI / "train" / "label", ["20", "21"])
    truths = {p[1]: read_label(p[2]) for p in pairs}
    seen = []

    def oracle(image: np.ndarray) -> np.ndarray:
        seen.append(image.shape)
        return truths[pairs[len(seen) - 1][1]]

    result = evaluate_predictions(pairs, oracle)
    assert seen == [(512, 512), (512, 512)]
    assert set(result["images"]) == {"20", "21"}
    assert result["mean"]["pixel_error"] == 0 and result["mean"]["rand_error"] < 1e-9


def test_metrics_do_not_import_torch(imports_none_of):
    code = (
        "import numpy as np; from unet_edge.evaluate import segmentation_metrics; "
        "segmentation_metrics(np.ones((8, 8), np.uint8), np.ones((8, 8), np.uint8))"
    )
    imports_none_of(code, "torch")


@needs_isbi
@pytest.mark.slow
def test_shipped_default_model_scores_as_its_model_card_says():
    import json

    from unet_edge.evaluate import evaluate_model

    root = Path(__file__).resolve().parents[2]
    recorded = json.loads((root / "export" / "isbi2012-default" / "metrics.json").read_text())
    if not (root / "unet_edge" / "data" / "default.onnx").is_file():
        pytest.fail(
            "unet_edge/data/default.onnx is missing; run export/isbi2012-default/finalize.py"
        )
    result = evaluate_model(
        None, ISBI / "train" / "image", ISBI / "train" / "label", names=parse_names("20-24")
    )
    for key in ("pixel_error", "rand_error", "rand_error_expanded", "iou"):
        assert result["mean"][key] == pytest.approx(recorded["mean"][key], abs=1e-3), key
    assert result["mean"]["rand_error_expanded"] <= 0.10
