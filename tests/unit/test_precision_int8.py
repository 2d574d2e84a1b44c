"""unet_edge.precision.int8: naming nodes, the float nodes by identity, finding int8 operators."""

from __future__ import annotations

import onnx
from onnx import helper

from unet_edge.precision.int8 import float_nodes, name_nodes, quantized_operators


def _graph(*nodes: onnx.NodeProto) -> onnx.GraphProto:
    return helper.make_graph(list(nodes), "g", [], [])


def test_name_nodes_makes_every_name_unique_and_keeps_good_ones() -> None:
    g = _graph(
        helper.make_node("Conv", ["x", "w"], ["a"], name=""),
        helper.make_node("Relu", ["a"], ["b"], name="keep"),
        helper.make_node("Conv", ["b", "w"], ["c"], name="keep"),  # a duplicate
        helper.make_node("Conv", ["c", "w"], ["d"], name="Conv_0"),  # taken by the first's choice
        helper.make_node("Softmax", ["d"], ["y"], name=""),
    )
    assert name_nodes(g) == 3
    names = [n.name for n in g.node]
    assert len(set(names)) == 5 and "" not in names
    assert names[1] == "keep" and names[3] == "Conv_0" and names[0] != "Conv_0"
    assert name_nodes(g) == 0  # nothing left to rename


def test_float_nodes_are_the_softmax_and_its_head_conv() -> None:
    g = _graph(
        helper.make_node("Conv", ["x", "w"], ["a"]),
        helper.make_node("Conv", ["a", "w"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["y"]),
    )
    name_nodes(g)
    assert float_nodes(g) == [g.node[2].name, g.node[1].name]
    # the body conv is not excluded: the exclusion list names nodes, not "every unnamed node"
    assert g.node[0].name not in float_nodes(g)


def test_quantized_operators() -> None:
    dq = helper.make_node("DequantizeLinear", ["wq", "s", "z"], ["w"], name="dq")
    conv = helper.make_node("Conv", ["x", "w"], ["y"], name="conv")
    plain = helper.make_node("Conv", ["x", "w0"], ["y0"], name="plain")
    assert quantized_operators(helper.make_model(_graph(dq, conv, plain))) == ["conv"]
    assert quantized_operators(helper.make_model(_graph(plain))) == []
