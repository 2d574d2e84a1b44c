"""unet_edge.precision.fp16: an fp16 graph with float32 inputs and outputs, nodes in order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from unet_edge import metadata
from unet_edge.config import Precision
from unet_edge.errors import ModelError
from unet_edge.precision.fp16 import _topological_sort, to_fp16
from unet_edge.runtime import Segmenter


def test_to_fp16_keeps_float32_io_and_runs(tiny_onnx: Path, tmp_path: Path) -> None:
    half = to_fp16(onnx.load(str(tiny_onnx)))
    onnx.checker.check_model(half)  # topologically sorted
    assert metadata.read(half).precision is Precision.FP16
    for v in (*half.graph.input, *half.graph.output):
        assert v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in half.graph.initializer)
    path = tmp_path / "half.onnx"
    onnx.save(half, str(path))
    img = np.random.default_rng(0).integers(0, 255, (120, 130), np.uint8)
    with Segmenter(tiny_onnx) as a, Segmenter(path) as b:
        assert np.abs(a.predict(img) - b.predict(img)).max() < 1e-2
    with pytest.raises(ModelError, match="already fp16"):
        to_fp16(half)


def test_topological_sort_orders_and_refuses_cycles() -> None:
    from onnx import helper

    a = helper.make_node("Relu", ["x"], ["a"], name="a")
    b = helper.make_node("Relu", ["a"], ["b"], name="b")
    g = helper.make_graph([b, a], "g", [helper.make_tensor_value_info("x", 1, [1])], [])
    _topological_sort(g)
    assert [n.name for n in g.node] == ["a", "b"]
    c = helper.make_node("Relu", ["d"], ["c"], name="c")
    d = helper.make_node("Relu", ["c"], ["d"], name="d")
    with pytest.raises(ModelError, match="cycle"):
        _topological_sort(helper.make_graph([c, d], "g", [], []))
