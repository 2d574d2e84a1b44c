"""What running a foreign graph costs, estimated from the graph before it is run once.

The probe (:mod:`unet_edge.models.probe`) runs a graph a few dozen times;
a graph of a few hundred bytes can ask for 1024-channel convolutions at full
resolution and keep it busy for minutes. :func:`flops_per_pixel` adds up,
for an ``n`` x ``n`` input, the multiply-adds of every ``Conv``,
``ConvTranspose``, ``MatMul`` and ``Gemm`` (inside ``If`` branches too: the
dearer branch) from their weight shapes and the output sizes ONNX shape
inference gives at that input size; a convolution whose output size is not
known is counted at the input's resolution. :func:`check_cost` refuses a
graph above a limit, with the figure, before anything runs.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..errors import ProbeError

if TYPE_CHECKING:
    import onnx

__all__ = ["MAX_FLOPS_PER_PIXEL", "check_cost", "flops_per_pixel"]

#: Largest cost per input pixel the probe accepts (the paper's 64-wide U-Net, same-padded, needs
#: 1.5 MFLOP, the shipped model 0.03; one 3x3 convolution of 1024 channels at full resolution 19).
MAX_FLOPS_PER_PIXEL = 20e6

Dims = list[int | None]


def _dims(t: onnx.TypeProto) -> Dims | None:
    """The dims of a tensor type (None for unknown dims), or None when it has no shape."""
    if not t.HasField("tensor_type") or not t.tensor_type.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in t.tensor_type.shape.dim]


def _graphs(g: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """``g`` and every subgraph in it (If branches, Loop and Scan bodies), depth first."""
    yield g
    for n in g.node:
        for a in n.attribute:
            for sub in [a.g] if a.HasField("g") else list(a.graphs):
                yield from _graphs(sub)


def _shapes(g: onnx.GraphProto) -> dict[str, Dims | None]:
    """Every tensor's known dims in ``g`` and its subgraphs (inputs, values, weights, constants)."""
    out: dict[str, Dims | None] = {}
    for sub in _graphs(g):
        for v in (*sub.input, *sub.value_info, *sub.output):
            out[v.name] = _dims(v.type)
        for t in sub.initializer:
            out[t.name] = list(t.dims)
        for n in sub.node:
            value = next((a.t for a in n.attribute if a.name == "value"), None)
            if n.op_type == "Constant" and value is not None:
                out[n.output[0]] = list(value.dims)
    return out


def _known(d: Dims | None) -> list[int] | None:
    return None if d is None or any(v is None for v in d) else [int(v) for v in d]  # type: ignore[arg-type]


def _ints(n: onnx.NodeProto, name: str) -> list[int]:
    return next((list(a.ints) for a in n.attribute if a.name == name), [])


class _Counter:
    """Adds up a graph's multiply-adds (x2: FLOPs) for an ``n`` x ``n`` input.

    Pixels (batch x spatial size) of a tensor come from shape inference, else
    from its producer's inputs: strides divide them, transposed convolutions
    and resizing multiply them, other operators keep the largest input's.
    """

    def __init__(self, shapes: dict[str, Dims | None], n: int, label: str) -> None:
        self.shapes, self.n, self.label = shapes, n, label
        self.est: dict[str, float] = {}

    def _weight(self, node: onnx.NodeProto) -> list[int]:
        w = _known(self.shapes.get(node.input[1])) if len(node.input) > 1 else None
        if w is None or len(w) < 3:
            raise ProbeError(
                f"{self.label}: the weight of its {node.op_type} node {node.name!r} has no "
                "fixed shape in the graph, so the cost of running it cannot be bounded before "
                "it runs; a network exported with fixed weights can be probed"
            )
        return w

    def pixels(self, name: str) -> float:
        """Batch x spatial size of tensor ``name`` (shape inference's, else estimated)."""
        d = self.shapes.get(name)
        spatial = _known(d[2:]) if d is not None and len(d) > 2 else None
        if spatial:
            batch = d[0] if d and d[0] is not None else 1
            return float(batch) * math.prod(spatial)
        return self.est.get(name, float(self.n * self.n))

    def _estimate(self, n: onnx.NodeProto) -> None:
        """Pixels of ``n``'s outputs where shape inference left them unknown."""
        spatial = [self.pixels(i) for i in n.input if i in self.est or self._spatial(i)]
        x = max(spatial, default=float(self.n * self.n))
        strides = math.prod(_ints(n, "strides") or [1])
        if n.op_type in ("Conv", "MaxPool", "AveragePool", "LpPool"):
            x /= strides
        elif n.op_type == "ConvTranspose":
            x *= strides
        elif n.op_type in ("Resize", "Upsample"):
            x *= 4  # scales known only at run time: the usual 2x up-sampling
        for o in n.output:
            self.est[o] = x

    def _spatial(self, name: str) -> bool:
        d = self.shapes.get(name)
        return d is not None and len(d) > 2 and _known(d[2:]) is not None

    def node(self, n: onnx.NodeProto) -> float:
        """FLOPs of one node (0 for nodes that do not multiply by weights)."""
        self._estimate(n)
        if n.op_type == "Conv":
            return 2.0 * math.prod(self._weight(n)) * self.pixels(n.output[0])
        if n.op_type == "ConvTranspose":  # weight (C_in, C_out / group, k...): per input pixel
            return 2.0 * math.prod(self._weight(n)) * self.pixels(n.input[0])
        if n.op_type in ("MatMul", "Gemm"):
            a, y = _known(self.shapes.get(n.input[0])), _known(self.shapes.get(n.output[0]))
            if a and y:
                trans = n.op_type == "Gemm" and any(x.name == "transA" and x.i for x in n.attribute)
                return 2.0 * math.prod(y) * (a[-2] if trans else a[-1])
        return 0.0

    def graph(self, g: onnx.GraphProto) -> float:
        """FLOPs of ``g``: its nodes, the dearer branch of each If; a loop of them refused."""
        total = 0.0
        for n in g.node:
            total += self.node(n)
            subs = [a.g for a in n.attribute if a.HasField("g")]
            if n.op_type == "If":
                total += max((self.graph(s) for s in subs), default=0.0)
            elif subs and any(self.graph(s) for s in subs):
                raise ProbeError(
                    f"{self.label}: its {n.op_type} node {n.name!r} repeats weighted layers a "
                    "number of times known only when it runs, so the cost of running it cannot "
                    "be bounded; unet-edge probes feed-forward networks"
                )
        return total


def flops_per_pixel(model: onnx.ModelProto, n: int = 256, label: str = "the graph") -> float:
    """FLOPs per input pixel of ``model`` on a (1, C, ``n``, ``n``) input, estimated statically.

    ``model``'s first input gets that shape and ONNX shape inference (with
    data propagation) gives every layer's output size; weights must have fixed
    shapes (:class:`ProbeError` otherwise, naming ``label``).
    """
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    weights = {t.name for t in m.graph.initializer}  # old files list weights as inputs too
    image = next((i for i in m.graph.input if i.name not in weights), None)
    if image is None:
        return 0.0
    dims = image.type.tensor_type.shape.dim
    for i, d in enumerate(dims):
        if i != 1 and not d.HasField("dim_value"):  # batch 1, spatial n; channels as they are
            d.dim_value = 1 if i == 0 else n
    with contextlib.suppress(Exception):  # an inconsistent graph: sizes estimated instead
        m = onnx.shape_inference.infer_shapes(m, data_prop=True)
    spatial = [d.dim_value for d in dims[2:]] or [n, n]
    pixels = math.prod(spatial)
    return _Counter(_shapes(m.graph), int(math.sqrt(pixels)), label).graph(m.graph) / pixels


def check_cost(
    model: onnx.ModelProto, n: int, label: str, limit: float = MAX_FLOPS_PER_PIXEL
) -> float:
    """:func:`flops_per_pixel`, or :class:`ProbeError` with the figure when above ``limit``."""
    cost = flops_per_pixel(model, n, label)
    if cost > limit:
        raise ProbeError(
            f"{label}: running it takes about {cost / 1e6:.1f} MFLOP per input pixel "
            f"(estimated from its weights before running), above the {limit / 1e6:.0f} MFLOP "
            "the probe accepts (the paper's U-Net needs about 1.5); probing it would take "
            "minutes. Give it unet-edge metadata, or raise the probe's max_flops_per_pixel"
        )
    return cost
