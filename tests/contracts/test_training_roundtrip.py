"""A trained checkpoint round-trips through export and `evaluate` (needs torch)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch", reason="training tests need the [train] extra (torch)")

from unet_edge.evaluate import evaluate_model
from unet_edge.training import checkpoint as ckpt
from unet_edge.training.export import export_checkpoint
from unet_edge.training.loop import TrainConfig, train

ISBI = Path(__file__).resolve().parents[3] / "shared" / "data" / "isbi2012"
pytestmark = pytest.mark.skipif(
    not (ISBI / "train" / "image").is_dir(),
    reason=f"ISBI 2012 data not found at {ISBI} (expected ../shared next to the repository)",
)


def test_exported_model_scores_like_the_training_validation(tmp_path: Path):
    cfg = TrainConfig(
        width=4,
        depth=2,
        tile=92,
        steps=6,
        val_every=6,
        threads=1,
        seed=5,
        lr=3e-3,
        val_names=("20", "21"),
        train_names=("00",),
    )
    result = train(cfg, ISBI / "train", tmp_path / "m.pt")
    onnx_path = tmp_path / "m.onnx"
    export_checkpoint(result.output, onnx_path)
    scored = evaluate_model(
        onnx_path, ISBI / "train" / "image", ISBI / "train" / "label", names=["20", "21"]
    )
    assert set(scored["images"]) == {"20", "21"}
    # The runtime's tiled ONNX inference equals the loop's whole-image torch
    # validation, so the metrics agree up to arg-max ties.
    trained = ckpt.load(result.output).metrics
    assert scored["mean"]["pixel_error"] == pytest.approx(trained["pixel_error"], abs=1e-4)
    for key in ("pixel_error", "rand_error", "rand_error_expanded", "iou", "dice"):
        assert scored["mean"][key] == pytest.approx(trained[key], abs=2e-3), key
