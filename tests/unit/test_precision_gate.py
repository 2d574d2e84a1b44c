"""unet_edge.precision.gate: masks of two models compared on the same tiles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from unet_edge.errors import ExportError
from unet_edge.precision.gate import agreement, checked_agreement


def test_a_model_agrees_with_itself_and_not_with_another(
    tiny_onnx: Path, same_onnx: Path, tmp_path: Path
) -> None:
    frames = [np.random.default_rng(i).integers(0, 255, (150, 170), np.uint8) for i in range(2)]
    same = agreement(tiny_onnx, tiny_onnx, frames)
    assert same["pixel_agreement"] == same["min_image_agreement"] == 1.0
    assert same["max_abs_prob_diff"] == 0.0 and same["pixels"] == 2 * 150 * 170
    assert same["provider"] == "cpu" and len(same["per_image"]) == 2
    other = agreement(tiny_onnx, same_onnx, frames)
    assert other["pixel_agreement"] < 0.99
    out = tmp_path / "never.onnx"
    with pytest.raises(ExportError, match="was not written") as e:
        checked_agreement(tiny_onnx, same_onnx, frames, None, 0.99, out)
    assert str(out) in str(e.value) and not out.exists()
    assert checked_agreement(tiny_onnx, tiny_onnx, frames, None, 0.99, out)["threshold"] == 0.99
