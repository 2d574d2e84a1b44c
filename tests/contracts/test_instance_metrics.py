"""Instance matching (unet_edge.evaluate.instance_metrics): F1 at IoU 0.5, merges, splits,
pooling over images, and scoring a model on a folder of instance labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from unet_edge.errors import InputError
from unet_edge.evaluate import instance_metrics, pooled_instance_metrics, score_instances


def two_squares() -> np.ndarray:
    t = np.zeros((10, 20), np.int32)
    t[2:8, 2:8], t[2:8, 8:14] = 1, 2  # touching
    return t


def test_identical_labels_score_one_whatever_the_ids():
    t = two_squares()
    m = instance_metrics(np.where(t > 0, t + 40, 0), t)
    assert (m["tp"], m["fp"], m["fn"], m["f1"]) == (2, 0, 0, 1.0)
    assert m["merges"] == m["splits"] == 0


def test_a_merge_is_one_prediction_over_two_objects():
    t = two_squares()
    m = instance_metrics((t > 0).astype(np.int32), t)
    assert m["merges"] == 1 and m["tp"] == 0 and m["fp"] == 1 and m["fn"] == 2
    assert m["f1"] == 0.0


def test_a_split_is_one_object_in_two_predictions():
    t = np.zeros((10, 20), np.int32)
    t[2:8, 2:14] = 1
    p = np.zeros_like(t)
    p[2:8, 2:8], p[2:8, 8:14] = 1, 2
    m = instance_metrics(p, t)
    assert m["splits"] == 1 and m["merges"] == 0 and m["tp"] == 0


def test_iou_threshold_is_strict_and_shrunk_objects_still_match():
    t = np.zeros((10, 10), np.int32)
    t[0:10, 0:4] = 1  # 40 px
    p = np.zeros_like(t)
    p[0:10, 0:2] = 1  # 20 px inside: IoU exactly 0.5 is not a match
    assert instance_metrics(p, t)["tp"] == 0
    p[0:10, 0:3] = 1  # IoU 0.75
    assert instance_metrics(p, t)["tp"] == 1
    assert instance_metrics(p, t, iou=0.8)["tp"] == 0


def test_empty_images_and_bad_input():
    z = np.zeros((5, 5), np.int32)
    assert instance_metrics(z, z)["f1"] == 1.0
    one = z.copy()
    one[1:3, 1:3] = 1
    assert instance_metrics(z, one)["fn"] == 1 and instance_metrics(one, z)["fp"] == 1
    with pytest.raises(InputError, match="same shape"):
        instance_metrics(z, np.zeros((5, 6), np.int32))
    with pytest.raises(InputError, match="IoU"):
        instance_metrics(z, z, iou=0.3)


def test_pooling_sums_counts_before_the_ratios():
    t = two_squares()
    good = instance_metrics(t, t)
    bad = instance_metrics(np.zeros_like(t), t)
    pooled = pooled_instance_metrics([good, bad])
    assert (pooled["tp"], pooled["fn"]) == (2, 2)
    assert pooled["f1"] == pytest.approx(2 * 2 / (2 * 2 + 0 + 2))


def test_score_instances_runs_the_labelling_of_run_labels(tiny_onnx: Path, tmp_path: Path):
    from unet_edge.training.synthetic import write_folder

    write_folder(tmp_path, 2, seed=1, shape=(64, 64))
    result = score_instances(tiny_onnx, tmp_path)
    assert set(result["images"]) == {"nuclei_0000", "nuclei_0001"}
    assert 0.0 <= result["mean"]["f1"] <= 1.0 and result["iou"] == 0.5
    objects = sum(m["objects"] for m in result["images"].values())
    assert result["mean"]["objects"] == objects > 0
