"""The PyTorch eager baseline of the benchmark: the exported model's own weights, run by torch.

The weights are read back from the ONNX file (the TorchScript exporter names
each initializer after its ``state_dict`` key, prefixed ``net.``), so the
baseline runs exactly the graph the runtime runs; it is fed the same tiles
through :func:`unet_edge.tiling.run_tiled`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import torch

from .. import metadata
from ..errors import ModelError
from .model import UNet


def _convs_in_order(model: UNet) -> list[torch.nn.Module]:
    """The model's Conv2d/ConvTranspose2d modules in the order forward() runs them."""
    kinds = (torch.nn.Conv2d, torch.nn.ConvTranspose2d)
    order: list[torch.nn.Module] = []
    for block in model.down:
        order += [m for m in block.modules() if isinstance(m, kinds)]
    order += [m for m in model.bottleneck.modules() if isinstance(m, kinds)]
    for up, block in zip(model.up, model.up_blocks, strict=True):
        order.append(up)
        order += [m for m in block.modules() if isinstance(m, kinds)]
    order.append(model.head)
    return order


def model_from_onnx(path: str | os.PathLike[str]) -> UNet:
    """A :class:`UNet` in eval mode carrying the weights of an fp32 unet-edge ONNX file.

    The graph's Conv/ConvTranspose nodes are matched, in order, with the
    model's convolutions (the exporter may share identical initializers, so
    names are not used); kinds and shapes must agree.
    """
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(path))
    info = metadata.read(proto)
    if info.precision.value != "fp32":
        raise ModelError(
            f"{path} is {info.precision.value}; the torch baseline needs the fp32 graph"
        )
    if info.architecture.batch_norm:
        raise ModelError(f"{path} has batch norm; the torch baseline supports plain U-Nets only")
    weights = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    # The exporter shares identical initializers (e.g. zero biases) through Identity nodes.
    for n in proto.graph.node:
        if n.op_type == "Identity" and n.input[0] in weights:
            weights[n.output[0]] = weights[n.input[0]]
    nodes = [n for n in proto.graph.node if n.op_type in ("Conv", "ConvTranspose")]
    model = UNet(info.architecture).eval()
    mods = _convs_in_order(model)
    if len(nodes) != len(mods):
        raise ModelError(f"{path} has {len(nodes)} convolutions, the architecture {len(mods)}")
    with torch.no_grad():
        for node, mod in zip(nodes, mods, strict=True):
            want = "ConvTranspose" if isinstance(mod, torch.nn.ConvTranspose2d) else "Conv"
            params = [p for _, p in mod.named_parameters()]
            if node.op_type != want or len(node.input) != 3:
                raise ModelError(f"{path}: node {node.name!r} does not match the architecture")
            for name, param in zip(node.input[1:], params, strict=True):
                value = weights.get(name)
                if value is None or value.shape != tuple(param.shape):
                    raise ModelError(f"{path}: weight {name!r} does not match the architecture")
                param.copy_(torch.from_numpy(np.array(value)))
    return model


def predictor(
    path: str | os.PathLike[str], threads: int | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """A :data:`unet_edge.tiling.Predictor` running the model in PyTorch eager mode (CPU).

    Returns softmax probabilities (N, K, oh, ow) float32, like the ONNX graph.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    model = model_from_onnx(path)

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return torch.softmax(model(torch.from_numpy(batch)), dim=1).numpy()

    return run
