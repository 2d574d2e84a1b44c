"""The PyTorch eager baseline (unet_edge/training/baseline.py): the ONNX file's weights in a
torch UNet give the graph's probabilities; what it cannot carry is refused."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnx_models
import pytest

pytest.importorskip("torch")

from unet_edge import metadata
from unet_edge.config import Precision, UNetConfig
from unet_edge.errors import ModelError
from unet_edge.training.baseline import model_from_onnx, predictor


def test_the_baseline_computes_what_the_graph_does(tiny_onnx: Path) -> None:
    x = np.random.default_rng(0).random((2, 1, 188, 188), dtype=np.float32)
    expected = onnx_models.run(onnx.load(str(tiny_onnx)), x)
    got = predictor(tiny_onnx)(x)
    assert got.shape == expected.shape == (2, 2, 4, 4) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert not model_from_onnx(tiny_onnx).training


def test_what_it_cannot_carry_is_refused(tiny_onnx: Path, same_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="has batch norm; the torch baseline supports plain"):
        model_from_onnx(same_onnx)
    proto = onnx.load(str(tiny_onnx))
    info = metadata.read(proto)
    metadata.write(proto, info.with_precision(Precision.INT8))
    int8 = tmp_path / "int8.onnx"
    onnx.save_model(proto, str(int8))
    with pytest.raises(ModelError, match="is int8; the torch baseline needs the fp32 graph"):
        model_from_onnx(int8)
    proto = onnx.load(str(tiny_onnx))
    metadata.write(proto, replace(info, architecture=UNetConfig(base_width=2, depth=3)))
    shallower = tmp_path / "depth3.onnx"
    onnx.save_model(proto, str(shallower))
    with pytest.raises(ModelError, match="convolutions, the architecture"):
        model_from_onnx(shallower)
