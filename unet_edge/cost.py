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

:func:`check_predict_memory` is the same kind of estimate for a whole image
segmented in memory (:func:`predict_bytes`), held to the memory there is
(:func:`available_memory`) before anything is allocated.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .config import Padding, UNetConfig
from .errors import InputError, MemoryLimitError
from .geometry import Geometry

__all__ = [
    "MEMORY_LIMIT",
    "Layer",
    "activation_bytes",
    "available_memory",
    "check_predict_memory",
    "conv_flops",
    "layers",
    "predict_bytes",
]


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


# -- what a whole image costs in memory --------------------------------------------------
#: Bytes a prediction in memory may need (None: what the system has available when asked,
#: :func:`available_memory`). Set it (process-wide) to refuse earlier, e.g. in a service.
MEMORY_LIMIT: int | None = None

_MEMINFO = Path("/proc/meminfo")
_CGROUP = Path("/sys/fs/cgroup")  # v2: memory.max and memory.current of this container


def available_memory() -> int | None:
    """Bytes this process may still allocate, as the system says: Linux's
    ``MemAvailable``, lowered to the headroom of a cgroup memory limit (a container);
    elsewhere the free physical memory; None when nothing says."""
    found = []
    try:
        for line in _MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = (_CGROUP / "memory.max").read_text().strip()
        if limit != "max":
            found.append(int(limit) - int((_CGROUP / "memory.current").read_text()))
    except (OSError, ValueError):
        pass
    if not found:
        with contextlib.suppress(ValueError, OSError, AttributeError):
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    return max(0, min(found)) if found else None


def predict_bytes(shapes: Sequence[tuple[int, ...]], classes: int, stack: bool) -> int:
    """Bytes :meth:`unet_edge.Segmenter.predict` and ``segment`` allocate for frames of
    ``shapes`` ((H, W[, C]) each): per pixel, the float32 probabilities of every class
    (twice for a stack: each frame's, then the stacked copy), and the mask with its running
    maximum (5). The tiles in flight are not counted (a few MiB)."""
    pixels = sum(int(s[0]) * int(s[1]) for s in shapes)
    return pixels * (4 * classes * (2 if stack else 1) + 5)


def check_predict_memory(shapes: Sequence[tuple[int, ...]], classes: int, stack: bool) -> None:
    """Refuse (:class:`MemoryLimitError`) a prediction in memory of frames of ``shapes``
    that needs more than :data:`MEMORY_LIMIT` (None: :func:`available_memory`), before
    anything is allocated; the message gives the estimate and the windowed path to use."""
    limit = MEMORY_LIMIT if MEMORY_LIMIT is not None else available_memory()
    need = predict_bytes(shapes, classes, stack)
    if limit is None or need <= limit:
        return
    h, w = (int(n) for n in shapes[0][:2])
    what = f"{len(shapes)} frames of {h} x {w} pixels need" if stack else "an image of "
    what += "" if stack else f"{h} x {w} pixels needs"
    how = "segment the frames one at a time, or each" if stack else "segment it"
    raise MemoryLimitError(
        f"{what} about {_size(need)} to segment in memory (float32 probabilities of "
        f"{classes} classes and the mask), more than the {_size(limit)} "
        f"{'allowed' if MEMORY_LIMIT is not None else 'available'}; {how} window by window "
        "instead: unet_edge.paths.dask.segment_dask(image, segmenter=seg) gives a lazy Dask "
        "array to store block by block (.to_zarr), and a TIFF file goes through "
        "unet_edge.paths.windowed.segment_large",
        needed=need,
        available=limit,
    )


def _size(n: int) -> str:
    """Bytes for people: 6.7 GiB, 300 MiB."""
    return f"{n / (1 << 30):.1f} GiB" if n >= 1 << 30 else f"{-(-n // (1 << 20))} MiB"
