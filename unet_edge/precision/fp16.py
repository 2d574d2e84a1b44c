"""fp16 copies of fp32 unet-edge graphs (for CUDA and TensorRT), float32 inputs and outputs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import metadata
from ..config import Precision
from ..errors import ModelError

if TYPE_CHECKING:
    import onnx

__all__ = ["to_fp16"]


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """An fp16 copy of an fp32 unet-edge graph, float32 inputs/outputs, precision "fp16".

    Uses ``onnxruntime.transformers.float16`` (the same conversion as
    onnxconverter-common). The metadata is restamped with precision ``fp16``.
    """
    from onnxruntime.transformers.float16 import convert_float_to_float16

    info = metadata.read(model)
    if info.precision is not Precision.FP32:
        raise ModelError(
            f"the model is already {info.precision.value}; convert the fp32 model to fp16"
        )
    out = convert_float_to_float16(model, keep_io_types=True)
    # The converter appends the input/output Casts at the end of the node list;
    # onnxruntime does not mind, but onnx.checker (and other runtimes) want
    # the nodes in topological order.
    _topological_sort(out.graph)
    metadata.write(out, info.with_precision(Precision.FP16))
    return out


def _topological_sort(graph: onnx.GraphProto) -> None:
    """Reorder ``graph.node`` in place so every node comes after the producers of its inputs."""
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        rest = [n for n in pending if not all(i in ready for i in n.input)]
        done = [n for n in pending if all(i in ready for i in n.input)]
        if not done:
            raise ModelError(
                f"the graph has a cycle or a dangling input near node {rest[0].name!r}"
            )
        for n in done:
            ordered.append(n)
            ready.update(n.output)
        pending = rest
    copies = [type(n)() for n in ordered]
    for c, n in zip(copies, ordered, strict=True):
        c.CopyFrom(n)
    del graph.node[:]
    graph.node.extend(copies)
