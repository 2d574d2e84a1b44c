"""What one tile costs: convolution FLOPs and activation memory, from the architecture alone.

Pure Python (no numpy, no torch): the runtime and the benchmark use it
without importing the training code. :func:`conv_flops` counts exactly what
:func:`unet_edge.training.model.conv_gflops` counts by tracing the PyTorch
model (2 x multiply-adds of every convolution and up-convolution; biases,
ReLU, pooling, crops and softmax are not counted); the tests hold the two
equal.

:func:`activation_bytes` estimates the peak memory of the activations of
one batch: walking the network in execution order, at each layer the live
tensors are the layer's input and output plus every encoder map still
waiting for its skip connection. ONNX Runtime fuses Conv+ReLU and reuses
freed buffers, so this is what a good planner needs; its arena rounds up,
so the measured peak is somewhat higher (the benchmark reports both).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from .config import Padding, UNetConfig
from .errors import InputError
from .geometry import Geometry

__all__ = ["Layer", "activation_bytes", "conv_flops", "layers"]


@dataclass(frozen=True)
class Layer:
    """One convolution-like step: channels and sizes of its input and output (per image)."""

    kind: str  # "conv", "upconv", "pool", "concat"
    cin: int
    cout: int
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]
    kernel: int  # side of the kernel (0 for pool/concat)
    held: int  # elements held for skip connections while this layer runs

    @property
    def macs(self) -> int:
        ih, iw = self.in_hw
        oh, ow = self.out_hw
        if self.kind == "conv":
            return oh * ow * self.cout * self.cin * self.kernel * self.kernel
        if self.kind == "upconv":  # each input pixel scatters into k*k outputs per channel
            return ih * iw * self.cin * self.cout * self.kernel * self.kernel
        return 0

    @property
    def live(self) -> int:
        """Elements live while this layer runs: input, output, held skips."""
        ih, iw = self.in_hw
        oh, ow = self.out_hw
        return self.cin * ih * iw + self.cout * oh * ow + self.held


def layers(config: UNetConfig, height: int, width: int) -> Iterator[Layer]:
    """The network's layers in execution order for one (height, width) input tile.

    Raises :class:`InputError` if the size is not legal for the architecture.
    """
    g = Geometry.from_config(config)
    g.output_size(height)
    g.output_size(width)
    k = config.kernel_size
    shrink = 0 if config.padding is Padding.SAME else k - 1
    widths = [config.base_width * 2**i for i in range(config.depth + 1)]
    h, w, c = height, width, config.in_channels
    skips: list[int] = []  # elements of each held encoder map

    def block(cin: int, cout: int) -> Iterator[Layer]:
        nonlocal h, w, c
        for i in range(config.convs_per_level):
            src = cin if i == 0 else cout
            yield Layer("conv", src, cout, (h, w), (h - shrink, w - shrink), k, sum(skips))
            h, w, c = h - shrink, w - shrink, cout

    for level in range(config.depth):
        yield from block(c, widths[level])
        skips.append(c * h * w)
        yield Layer("pool", c, c, (h, w), (h // 2, w // 2), 0, sum(skips))
        h, w = h // 2, w // 2
    yield from block(c, widths[-1])
    for level in reversed(range(config.depth)):
        cout = widths[level]
        yield Layer("upconv", c, cout, (h, w), (2 * h, 2 * w), 2, sum(skips))
        h, w, c = 2 * h, 2 * w, cout
        skip = skips.pop()
        # The cropped skip and the up-convolved map become one (2 * cout)-channel map.
        yield Layer("concat", 2 * c, 2 * c, (h, w), (h, w), 0, sum(skips) + skip)
        yield from block(2 * c, cout)
    yield Layer("conv", c, config.classes, (h, w), (h, w), 1, 0)


def conv_flops(config: UNetConfig, height: int, width: int) -> int:
    """FLOPs (2 x multiply-adds of all convolutions) of one (height, width) tile, batch 1."""
    return 2 * sum(layer.macs for layer in layers(config, height, width))


def activation_bytes(
    config: UNetConfig, height: int, width: int, batch: int = 1, itemsize: int = 4
) -> int:
    """Estimated peak activation memory (bytes) of one batch of (height, width) tiles."""
    if batch < 1:
        raise InputError(f"batch must be >= 1, got {batch}")
    return batch * itemsize * max(layer.live for layer in layers(config, height, width))
