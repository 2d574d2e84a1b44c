"""unet_edge.models.probe_cost: a graph's FLOPs per pixel, from the graph, before running it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from unet_edge import cost, metadata
from unet_edge.errors import ProbeError
from unet_edge.models.probe_cost import check_cost, flops_per_pixel


def _model(nodes: list[onnx.NodeProto], weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _w(*shape: int) -> np.ndarray:
    return np.zeros(shape, np.float32)


def test_convolutions_are_counted_at_their_resolution() -> None:
    m = _model(
        [
            helper.make_node("Conv", ["x", "w0"], ["a"], pads=[1] * 4),
            helper.make_node("MaxPool", ["a"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
            helper.make_node("Conv", ["p", "w1"], ["b"], pads=[1] * 4),
            helper.make_node("ConvTranspose", ["b", "wt"], ["u"], strides=[2, 2]),
            helper.make_node("Conv", ["u", "w2"], ["y"]),
        ],
        {"w0": _w(8, 1, 3, 3), "w1": _w(16, 8, 3, 3), "wt": _w(16, 8, 2, 2), "w2": _w(2, 8, 1, 1)},
    )
    full, quarter = 1.0, 0.25
    want = 2 * (8 * 9 * full + 16 * 8 * 9 * quarter + 16 * 8 * 4 * quarter + 2 * 8 * full)
    assert flops_per_pixel(m, 64) == pytest.approx(want)


def test_the_unet_estimate_matches_the_architectures_count(tiny_onnx: Path) -> None:
    info = metadata.read(tiny_onnx)
    n = 252  # a legal size: every layer's size is exact
    exact = cost.conv_flops(info.architecture, n, n) / n**2
    assert flops_per_pixel(onnx.load(str(tiny_onnx)), n) == pytest.approx(exact, rel=0.02)


def test_an_if_costs_its_dearer_branch_and_unknown_weights_are_refused() -> None:
    def branch(name: str, cout: int) -> onnx.GraphProto:
        w = numpy_helper.from_array(_w(cout, 1, 3, 3), f"w_{name}")
        return helper.make_graph(
            [helper.make_node("Conv", ["x", f"w_{name}"], [f"o_{name}"], pads=[1] * 4)],
            name,
            [],
            [helper.make_tensor_value_info(f"o_{name}", TensorProto.FLOAT, None)],
            [w],
        )

    m = _model(
        [
            helper.make_node("ReduceMean", ["x"], ["m"], keepdims=0),
            helper.make_node("Greater", ["m", "t"], ["c"]),
            helper.make_node(
                "If", ["c"], ["y"], then_branch=branch("a", 4), else_branch=branch("b", 64)
            ),
        ],
        {"t": np.array(0.5, np.float32)},
    )
    assert flops_per_pixel(m, 32) == pytest.approx(2 * 64 * 9)  # not 4 + 64 channels
    shaped = _model(  # a weight whose size comes from the pixel values: known only when run
        [
            helper.make_node("ReduceMax", ["x"], ["mx"], keepdims=0),
            helper.make_node("Cast", ["mx"], ["k"], to=TensorProto.INT64),
            helper.make_node("Unsqueeze", ["k", "ax"], ["k1"]),
            helper.make_node("Concat", ["k1", "rest"], ["s"], axis=0),
            helper.make_node("ConstantOfShape", ["s"], ["w"]),
            helper.make_node("Conv", ["x", "w"], ["y"]),
        ],
        {"ax": np.array([0], np.int64), "rest": np.array([1, 3, 3], np.int64)},
    )
    with pytest.raises(ProbeError, match=r"net.onnx: the weight of its Conv node .* no fixed"):
        flops_per_pixel(shaped, 32, "net.onnx")


def test_check_cost_gives_the_figure() -> None:
    m = _model([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1] * 4)], {"w": _w(512, 1, 3, 3)})
    assert check_cost(m, 32, "m.onnx") == pytest.approx(2 * 512 * 9)
    with pytest.raises(ProbeError, match=r"m.onnx: .* about 0\.0 MFLOP per input pixel"):
        check_cost(m, 32, "m.onnx", limit=1000)
