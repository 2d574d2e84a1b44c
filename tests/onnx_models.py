"""Small U-Nets written directly as ONNX graphs, without torch, for the runtime tests.

:func:`build` writes the network of :class:`unet_edge.training.model.UNet`
node by node with ``onnx.helper``: 3x3 convolutions (valid or same) with
optional batch norm and ReLU, 2x2 max-pool, 2x2 stride-2 transposed
convolution, centre crop of the skip connection, concatenation, 1x1 head and
the softmax over classes. Its initializers carry the names of the torch
model's ``state_dict`` (``down.0.0.weight``, ``up.1.bias``, ...), so the same
numpy weights load into either; ``contracts/test_onnx_models.py`` checks once, with
torch, that both compute the same thing. :func:`make_model` stamps the
metadata with the project's own :func:`unet_edge.metadata.write`, so
``unet_edge.Segmenter(path)`` accepts the file.

The graph input is ``image`` (N, C, H, W) with symbolic N, H and W. The skip
crop is computed from ``Shape`` ops (half the size difference of the skip and
the up-sampled map) rather than written as a constant, so this is an
independent check of the torch model's constant crops.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from unet_edge import metadata
from unet_edge.config import Normalization, Padding, UNetConfig
from unet_edge.metadata import ModelInfo

PERCENTILE = Normalization(mode="percentile", low=1.0, high=99.8, mean=0.5, std=0.25, clip=True)

OPSET = 17
IR_VERSION = 8  # what onnxruntime releases from 1.15 on read
BN_EPS = 1e-5  # torch.nn.BatchNorm2d's default


def widths(config: UNetConfig) -> list[int]:
    """Feature maps per level, top level first, bottleneck last."""
    return [config.base_width * 2**i for i in range(config.depth + 1)]


def _block_layout(config: UNetConfig) -> list[tuple[int, int | None]]:
    """(conv index, batch-norm index or None) inside one torch ``_Block`` Sequential."""
    per = 3 if config.batch_norm else 2  # conv, [bn], relu
    return [
        (per * i, per * i + 1 if config.batch_norm else None) for i in range(config.convs_per_level)
    ]


def _block_names(config: UNetConfig) -> list[tuple[str, int, int]]:
    """(state_dict prefix, in channels, out channels) of every conv block, in forward order."""
    w = widths(config)
    blocks = []
    cin = config.in_channels
    for level in range(config.depth):
        blocks.append((f"down.{level}", cin, w[level]))
        cin = w[level]
    blocks.append(("bottleneck", w[-2] if config.depth else config.in_channels, w[-1]))
    for i, level in enumerate(reversed(range(config.depth))):
        blocks.append((f"up_blocks.{i}", 2 * w[level], w[level]))
    return blocks


def random_weights(config: UNetConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """He-normal weights and small random biases, keyed like ``UNet(config).state_dict()``.

    Biases and batch-norm statistics are random (not the zeros and ones of a
    fresh torch model) so that a mis-wired bias or statistic shows up.
    ``num_batches_tracked`` is left out: the ONNX graph has no use for it.
    """
    rng = np.random.default_rng(seed)
    k = config.kernel_size
    out: dict[str, np.ndarray] = {}

    def normal(shape: tuple[int, ...], std: float) -> np.ndarray:
        return (rng.standard_normal(shape) * std).astype(np.float32)

    for prefix, cin, cout in _block_names(config):
        for i, (conv, bn) in enumerate(_block_layout(config)):
            c = cin if i == 0 else cout
            out[f"{prefix}.{conv}.weight"] = normal((cout, c, k, k), np.sqrt(2.0 / (c * k * k)))
            if bn is None:
                out[f"{prefix}.{conv}.bias"] = normal((cout,), 0.05)
            else:
                out[f"{prefix}.{bn}.weight"] = rng.uniform(0.5, 1.5, cout).astype(np.float32)
                out[f"{prefix}.{bn}.bias"] = normal((cout,), 0.1)
                out[f"{prefix}.{bn}.running_mean"] = normal((cout,), 0.1)
                out[f"{prefix}.{bn}.running_var"] = rng.uniform(0.5, 1.5, cout).astype(np.float32)
    w = widths(config)
    for i, level in enumerate(reversed(range(config.depth))):
        cin, cout = w[level + 1], w[level]
        out[f"up.{i}.weight"] = normal((cin, cout, 2, 2), np.sqrt(2.0 / (cout * 4)))
        out[f"up.{i}.bias"] = normal((cout,), 0.05)
    out["head.weight"] = normal((config.classes, w[0], 1, 1), np.sqrt(2.0 / w[0]))
    out["head.bias"] = normal((config.classes,), 0.05)
    return out


class _Graph:
    """Collects nodes and initializers and hands out unique tensor names."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.weights = weights
        self.nodes: list[onnx.NodeProto] = []
        self.inits: dict[str, onnx.TensorProto] = {}
        self.count = 0

    def param(self, name: str) -> str:
        if name not in self.weights:
            raise KeyError(f"weights lack {name!r}")
        if name not in self.inits:
            self.inits[name] = numpy_helper.from_array(self.weights[name], name)
        return name

    def const(self, value: np.ndarray) -> str:
        name = f"const.{len(self.inits)}"
        self.inits[name] = numpy_helper.from_array(value, name)
        return name

    def op(
        self, op_type: str, inputs: list[str], output: str | None = None, **attrs: object
    ) -> str:
        self.count += 1
        out = output or f"{op_type.lower()}_{self.count}"
        # Named nodes, like torch's exporter writes: the quantiser selects nodes by name.
        self.nodes.append(
            helper.make_node(op_type, inputs, [out], name=f"{op_type}_{self.count}", **attrs)
        )
        return out


def _block(g: _Graph, x: str, prefix: str, config: UNetConfig) -> str:
    k = config.kernel_size
    pad = k // 2 if config.padding is Padding.SAME else 0
    for conv, bn in _block_layout(config):
        inputs = [x, g.param(f"{prefix}.{conv}.weight")]
        if bn is None:
            inputs.append(g.param(f"{prefix}.{conv}.bias"))
        x = g.op("Conv", inputs, kernel_shape=[k, k], pads=[pad] * 4)
        if bn is not None:
            names = [
                f"{prefix}.{bn}.{p}" for p in ("weight", "bias", "running_mean", "running_var")
            ]
            x = g.op("BatchNormalization", [x, *map(g.param, names)], epsilon=BN_EPS)
        x = g.op("Relu", [x])
    return x


def _centre_crop(g: _Graph, skip: str, like: str) -> str:
    """``skip`` cropped on every side to the spatial size of ``like``, sizes from Shape ops."""
    s_skip = g.op("Shape", [skip], start=2, end=4)
    s_like = g.op("Shape", [like], start=2, end=4)
    starts = g.op("Div", [g.op("Sub", [s_skip, s_like]), g.const(np.array([2, 2], np.int64))])
    ends = g.op("Add", [starts, s_like])
    return g.op("Slice", [skip, starts, ends, g.const(np.array([2, 3], np.int64))])


def build(
    config: UNetConfig,
    weights: dict[str, np.ndarray],
    *,
    softmax: bool = True,
    input_name: str = metadata.INPUT_NAME,
    output_name: str = metadata.OUTPUT_NAME,
) -> onnx.ModelProto:
    """The U-Net of ``config`` with ``weights`` as an ONNX model (no metadata).

    Input float32 (N, C, H, W), H and W legal for the geometry; output float32
    (N, classes, H_out, W_out): probabilities, or logits with ``softmax=False``.
    """
    g = _Graph(weights)
    x = input_name
    skips = []
    for level in range(config.depth):
        x = _block(g, x, f"down.{level}", config)
        skips.append(x)
        x = g.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    x = _block(g, x, "bottleneck", config)
    for i in range(config.depth):
        x = g.op(
            "ConvTranspose",
            [x, g.param(f"up.{i}.weight"), g.param(f"up.{i}.bias")],
            kernel_shape=[2, 2],
            strides=[2, 2],
        )
        skip = skips.pop()
        if config.padding is Padding.VALID:
            skip = _centre_crop(g, skip, x)
        x = _block(g, g.op("Concat", [skip, x], axis=1), f"up_blocks.{i}", config)
    head = [x, g.param("head.weight"), g.param("head.bias")]
    if softmax:
        g.op("Softmax", [g.op("Conv", head, kernel_shape=[1, 1])], output_name, axis=1)
    else:
        g.op("Conv", head, output_name, kernel_shape=[1, 1])
    graph = helper.make_graph(
        g.nodes,
        "unet",
        [
            helper.make_tensor_value_info(
                input_name, TensorProto.FLOAT, ["batch", config.in_channels, "height", "width"]
            )
        ],
        [
            helper.make_tensor_value_info(
                output_name,
                TensorProto.FLOAT,
                ["batch", len(weights["head.bias"]), "out_height", "out_width"],
            )
        ],
        initializer=list(g.inits.values()),
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION
    )
    model.producer_name = "unet-edge tests (onnx.helper)"
    onnx.checker.check_model(model, full_check=True)
    return model


def weights_of(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """The network weights in a model from :func:`build` (initializers other than constants)."""
    return {
        t.name: numpy_helper.to_array(t).copy()
        for t in model.graph.initializer
        if not t.name.startswith("const.")
    }


def make_model(
    config: UNetConfig | None = None,
    *,
    seed: int = 0,
    name: str = "tiny",
    normalization: Normalization | None = None,
    class_names: tuple[str, ...] | None = None,
    weights: dict[str, np.ndarray] | None = None,
) -> onnx.ModelProto:
    """A random-weight U-Net stamped with unet-edge metadata (``Segmenter`` accepts it)."""
    config = config or UNetConfig(base_width=2)
    info = ModelInfo(
        architecture=config,
        # as unet-edge trains them: per-image percentiles (fixed-range models pass their own)
        normalization=normalization or PERCENTILE,
        class_names=class_names or tuple(f"class{i}" for i in range(config.classes)),
        name=name,
        provenance={"built_by": "tests/onnx_models.py", "seed": seed},
    )
    model = build(config, weights if weights is not None else random_weights(config, seed))
    metadata.write(model, info)
    return model


def save(path: str | Path, config: UNetConfig | None = None, **kwargs: object) -> Path:
    """Write :func:`make_model` to ``path`` (one self-contained file) and return the path."""
    path = Path(path)
    onnx.save_model(make_model(config, **kwargs), str(path))  # type: ignore[arg-type]
    return path


def save_edited(
    path: str | Path, config: UNetConfig, edit: Callable[[dict[str, Any]], object]
) -> Path:
    """Write :func:`make_model` with its unet-edge metadata JSON edited in place by ``edit``
    (no validation: for tests of lying metadata) and return the path."""
    model = make_model(config)
    prop = next(p for p in model.metadata_props if p.key == metadata.KEY)
    d = json.loads(prop.value)
    edit(d)
    prop.value = json.dumps(d)
    onnx.save(model, str(path))
    return Path(path)


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """Run a model on the onnxruntime CPU provider: float32 (N, C, H, W) -> its one output."""
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, {sess.get_inputs()[0].name: x})[0])
