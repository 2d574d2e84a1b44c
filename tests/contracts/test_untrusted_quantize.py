"""quantize on graphs it did not make: nodes without names (or sharing one) are quantised, and a
graph left without any int8 operator is refused, nothing written.

The float-node exclusion used to be a list of node names: for a graph whose
nodes have no names it was ``["", ""]``, which excluded every node, and the
file was written with int8 metadata, a 100% agreement and no quantised operator.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx_models
import pytest
from onnx import TensorProto, helper, numpy_helper

from unet_edge import io, metadata, precision
from unet_edge.config import Precision, UNetConfig
from unet_edge.errors import ExportError
from unet_edge.metadata import ModelInfo
from unet_edge.runtime import Segmenter


@pytest.fixture(scope="module")
def crops(isbi: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two real ISBI crops (200x240) as PNG calibration images."""
    d = tmp_path_factory.mktemp("calib")
    return [
        io.write_png(
            d / f"crop{n}.png",
            io.read_image(isbi / "train" / "image" / f"{n}.png")[100:300, 50:290],
        )
        for n in ("20", "21")
    ]


@pytest.fixture(scope="module")
def confident(tiny_onnx: Path, crops: list[Path]) -> tuple[dict[str, np.ndarray], ModelInfo]:
    """``tiny_onnx``'s weights with the class boundary at the 99.9th percentile of the logit
    difference on the crops (a random net has many pixels near it; a trained one does not), so
    int8 agrees with fp32 above the threshold."""
    info = metadata.read(tiny_onnx)
    with Segmenter(tiny_onnx) as seg:
        probs = [seg.predict(io.read_image(p)) for p in crops]
    diff = np.concatenate([(np.log(p[1]) - np.log(p[0])).ravel() for p in probs])
    weights = onnx_models.weights_of(onnx.load(str(tiny_onnx)))
    weights["head.bias"][1] -= np.percentile(diff, 99.9)
    return weights, info


def _renamed(confident: tuple[dict[str, np.ndarray], ModelInfo], path: Path, name: object) -> Path:
    """The confident model with every node's name replaced by ``name(i)``."""
    weights, info = confident
    model = onnx_models.make_model(
        info.architecture,
        weights=weights,
        name="unnamed",
        normalization=info.normalization,
        class_names=info.class_names,
    )
    for i, n in enumerate(model.graph.node):
        n.name = name(i)  # type: ignore[operator]
    onnx.save(model, str(path))
    return path


def _float_ops(path: Path) -> set[str]:
    """op_types of the compute nodes of a QDQ file whose weight is not dequantised (float)."""
    m = onnx.load(str(path))
    producer = {o: n.op_type for n in m.graph.node for o in n.output}
    return {
        n.name
        for n in m.graph.node
        if n.op_type == "Conv" and producer.get(n.input[1]) != "DequantizeLinear"
    }


@pytest.mark.parametrize(
    "name", [lambda i: "", lambda i: "" if i % 2 else f"n{i}"], ids=["no-names", "some-names"]
)
def test_a_graph_whose_nodes_have_no_unique_names_is_quantised(
    confident: tuple[dict[str, np.ndarray], ModelInfo],
    crops: list[Path],
    tmp_path: Path,
    name: object,
) -> None:
    src = _renamed(confident, tmp_path / "plain.onnx", name)
    assert "" in {n.name for n in onnx.load(str(src)).graph.node}
    out = tmp_path / "q.onnx"
    rep = precision.quantize(src, crops, out)
    proto = onnx.load(str(out))
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    quantized = precision.quantized_operators(proto)
    # every convolution but the head computes in int8; the head and the softmax stay float
    assert len(quantized) == len(convs) - 1 + sum(
        n.op_type == "ConvTranspose" for n in proto.graph.node
    )
    assert len(_float_ops(out)) == 1
    softmax = [n for n in proto.graph.node if n.op_type == "Softmax"]
    producer = {o: n for n in proto.graph.node for o in n.output}
    assert len(softmax) == 1 and producer[softmax[0].input[0]].op_type == "Conv"
    assert metadata.read(out).precision is Precision.INT8
    assert 0.995 <= rep.agreement["pixel_agreement"] < 1.0  # int8 noise: not the float graph
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.onnx", "q.onnx"]


def _head_only(path: Path, unnamed: bool) -> Path:
    """A 1x1 convolution and a softmax (both kept in float), stamped as a tiny U-Net: nothing is
    left to quantise. Calibration only runs it, so its sizes need not match the metadata."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((2, 1, 1, 1)).astype(np.float32), "w")
    b = numpy_helper.from_array(np.array([0.1, -0.1], np.float32), "b")
    nodes = [
        helper.make_node("Conv", ["image", "w", "b"], ["logits"], name="" if unnamed else "head"),
        helper.make_node(
            "Softmax", ["logits"], ["probabilities"], axis=1, name="" if unnamed else "sm"
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "head",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 1, "h", "w"])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", 2, "h", "w"])],
        [w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    cfg = UNetConfig(base_width=2)
    metadata.write(model, ModelInfo(cfg, onnx_models.PERCENTILE, ("a", "b"), name="head"))
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("unnamed", [False, True], ids=["named", "unnamed"])
def test_a_graph_with_nothing_to_quantise_is_refused(
    crops: list[Path], tmp_path: Path, unnamed: bool
) -> None:
    src = _head_only(tmp_path / "head.onnx", unnamed)
    out = tmp_path / "out" / "head.int8.onnx"
    out.parent.mkdir()
    with pytest.raises(ExportError) as e:
        precision.quantize(src, crops, out)
    msg = str(e.value)
    assert "\n" not in msg and str(src) in msg and str(out) in msg
    assert "no operator computing in int8" in msg and "was not written" in msg
    assert not any(out.parent.iterdir())


def test_quantized_operators_reads_qdq_and_qoperator_graphs() -> None:
    def graph(*nodes: onnx.NodeProto) -> onnx.ModelProto:
        g = helper.make_graph(list(nodes), "g", [], [])
        return helper.make_model(g)

    dq = helper.make_node("DequantizeLinear", ["wq", "s", "z"], ["w"], name="dq")
    conv = helper.make_node("Conv", ["x", "w"], ["y"], name="conv")
    float_conv = helper.make_node("Conv", ["x", "w0"], ["y0"], name="float")
    assert precision.quantized_operators(graph(dq, conv, float_conv)) == ["conv"]
    assert precision.quantized_operators(graph(float_conv)) == []
    qlinear = helper.make_node("QLinearConv", list("abcdefgh"), ["y"], name="")
    assert precision.quantized_operators(graph(qlinear)) == ["QLinearConv"]
