"""A one-convolution ONNX graph and random batches for it: the smallest model an engine runs
(built with onnx.helper, no torch); shared by the engine tests."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper


def conv_model(classes: int = 2) -> bytes:
    """x (N, 1, H, W) float32 -> valid 3x3 conv -> softmax -> y (N, classes, H-2, W-2)."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(classes, 1, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.normal(size=(classes,)).astype(np.float32), "b")
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["z"], kernel_shape=[3, 3]),
        helper.make_node("Softmax", ["z"], ["y"], axis=1),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, "H", "W"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", classes, "h", "w"])
    graph = helper.make_graph(nodes, "tiny", [x], [y], initializer=[w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return bytes(model.SerializeToString())


def random_batch(n: int, size: int = 13, seed: int = 1) -> np.ndarray:
    """(n, 1, size, size) float32 in [0, 1)."""
    return np.random.default_rng(seed).random((n, 1, size, size), dtype=np.float32)
