"""Probing an ONNX U-Net that carries no unet-edge metadata, once, by running it.

Everything the exact overlap-tile kernel needs is measured on the graph
itself with ONNX Runtime on the CPU (random inputs, a few dozen small runs):

- the legal input sizes: the graph's fixed size, or ``min + step * k`` found
  by trying sizes (a size is legal when the graph runs and the output
  shrinks by the network's usual amount, ``2 * shrink``);
- the output rule: ``shrink = (input - output) / 2`` (0 for same-padded nets);
- the translation period (``alignment``, 2**depth for max-pooling nets): the
  smallest shift ``s`` with ``f(shift_s(x)) == shift_s(f(x))``;
- where zero padding inside the network reaches (``margin``): none when the
  shift test holds up to the output's edges (a valid-convolution net), the
  border no input changes when it holds up to that border (a valid net
  wrapped to keep its input's size, as in unet-edge's bioimage.io packages);
  otherwise the receptive-field radius (how far a perturbed pixel changes
  the output) plus one alignment period, like :attr:`Geometry.halo` of a
  same-padded U-Net;
- the channels, and whether the output is probabilities, logits or a sigmoid.

Then it verifies (:mod:`unet_edge.models.probe_verify`): the graph must be
deterministic, depend on its input, be centred on it (no shift between input
and output), shift with its input on a natural-looking image too, and tile
exactly with the probed geometry on a second, independent image. Its cost is
bounded: the FLOPs per pixel estimated from the graph before it runs
(:mod:`unet_edge.models.probe_cost`), and the seconds spent running it
(:mod:`unet_edge.models.probe_run`).

A graph that is not a dense, local image-to-image network (a classifier
output, a 3-D input, a global operation, a random or constant output, a
shifted output, a branch on the image's statistics) or costs too much to
probe raises a one-line :class:`ProbeError` naming the model.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError, ProbeError
from ..geometry import TileGeometry, round_up_size
from . import probe_verify as verify
from .probe_cost import MAX_FLOPS_PER_PIXEL, check_cost
from .probe_run import MAX_SECONDS, Graph, Runner, close, natural, noise

#: Shifts tried for the translation period (a max-pooling net of depth d has 2**d).
MAX_ALIGNMENT = 64
#: Input sizes tried for a first legal size (from 256 up: a valid net of depth 5 fits).
SCAN_START, SCAN_SPAN = 256, 2 * MAX_ALIGNMENT
#: Largest probe input side; a receptive field reaching this far is not a local network.
MAX_PROBE_SIZE = 1024


class OutputKind(str, enum.Enum):
    """What the graph's output channels hold."""

    PROBABILITIES = "probabilities"  # >= 2 channels in [0, 1] summing to 1: used as they are
    SIGMOID = "sigmoid"  # 1 channel in [0, 1]: p(foreground), background = 1 - p
    LOGITS = "logits"  # anything else: softmax over channels (1 channel: sigmoid)


@dataclass(frozen=True)
class Probe:
    """What probing found: tile geometry, channels and output kind of a graph."""

    geometry: TileGeometry
    channels: int
    out_channels: int
    kind: OutputKind
    receptive_field: int | None  # radius in px (None: not needed, no border effects)
    input_name: str
    output_name: str
    batch: int | None  # the graph's fixed batch size, None when dynamic

    @property
    def classes(self) -> int:
        """Classes after :func:`postprocess` (a single channel becomes background/foreground)."""
        return max(2, self.out_channels)

    def to_dict(self) -> dict[str, Any]:
        """What was found, as plain values (kept in the ModelInfo's ``architecture.extra``)."""
        return {
            "geometry": self.geometry.to_dict(),
            "channels": self.channels,
            "out_channels": self.out_channels,
            "output_kind": self.kind.value,
            "receptive_field": self.receptive_field,
            "batch": self.batch,
        }

    def describe(self) -> str:
        """What was found, in one line of words (``unet-edge info``, the package README)."""
        g = self.geometry
        rf = "" if self.receptive_field is None else f", receptive field {self.receptive_field} px"
        return (
            f"probed: {g.padding_name} net, input {self.channels} channel(s), output "
            f"{self.out_channels} channel(s) of {self.kind.value}; halo {g.halo} px (shrink "
            f"{g.shrink}, margin {g.margin}{rf}), alignment {g.alignment} px, legal inputs "
            f"{g.legal_text}"
        )


def postprocess(kind: OutputKind, out_channels: int) -> Callable[[np.ndarray], np.ndarray] | None:
    """The step from the graph's (N, K, h, w) output to class probabilities (None: as is)."""
    if kind is OutputKind.PROBABILITIES:
        return None
    if kind is OutputKind.SIGMOID or out_channels == 1:
        squash = kind is OutputKind.LOGITS

        def two_classes(y: np.ndarray) -> np.ndarray:
            """(N, 1, h, w) p(foreground), or its logit -> (N, 2, h, w) float32."""
            p = 1.0 / (1.0 + np.exp(-y)) if squash else y
            return np.concatenate([1.0 - p, p], axis=1).astype(np.float32)

        return two_classes

    def softmax(y: np.ndarray) -> np.ndarray:
        """(N, K, h, w) logits -> (N, K, h, w) float32 probabilities over axis 1."""
        e = np.exp(y - y.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

    return softmax


def _signature(g: Graph) -> tuple[int | None, int, int | None]:
    """(fixed batch or None, channels, fixed square size or None) from the input's dims."""
    dims = list(g.input.shape)
    if len(dims) != 4:
        raise ProbeError(
            f"the graph's input {g.input.name!r} has shape {dims}; unet-edge runs 2-D networks "
            "with one (N, C, H, W) input (a 3-D or 1-D network cannot be tiled in 2-D)"
        )
    out = list(g.output.shape)
    if len(out) != 4:
        raise ProbeError(
            f"the graph's output {g.output.name!r} has shape {out}: not a dense (N, K, H, W) "
            "image (a classifier or detector output cannot be tiled into a mask)"
        )
    batch, channels, h, w = (d if isinstance(d, int) and d > 0 else None for d in dims)
    if channels is None:
        raise ProbeError(f"the graph's input channel count is not fixed (shape {dims})")
    if (h is None) != (w is None) or (h is not None and h != w):
        raise ProbeError(
            f"the graph's input has a fixed non-square or half-fixed size {dims[2:]}; unet-edge "
            "tiles with square fixed sizes or fully dynamic height and width"
        )
    return batch, channels, h


def _shrink_at(run: Runner, n: int) -> int | None:
    """(n - output) / 2 when the graph runs on ``n`` and keeps a square output, else None."""
    out = run.out_size(n)
    return None if out is None or out < 1 or (n - out) % 2 else (n - out) // 2


def _first_legal(run: Runner) -> tuple[int, int, int]:
    """(a legal size, its shrink, the step to the next): scan up from :data:`SCAN_START`.

    A size with floor-rounded pooling runs but loses pixels (a larger shrink), so
    the legal sizes are those with the smallest shrink; the step is the smallest
    power of two to the next one.
    """
    n = next(
        (n for n in range(SCAN_START, SCAN_START + SCAN_SPAN) if _shrink_at(run, n) is not None),
        None,
    )
    if n is None:
        raise ProbeError(
            f"the graph ran on no square input of {SCAN_START}..{SCAN_START + SCAN_SPAN - 1} px "
            "with a square output of at most the same size; it is not a U-Net unet-edge can tile"
        )
    shrink = _shrink_at(run, n)
    assert shrink is not None
    d = 1
    while d <= SCAN_SPAN:
        s = _shrink_at(run, n + d)
        if s is not None and s < shrink:  # n itself lost pixels: start again from n + d
            n, shrink, d = n + d, s, 1
        elif s == shrink:
            return _least_shrink(run, n, shrink, d)
        else:
            d *= 2
    raise ProbeError(f"only one legal input size ({n}) found: the graph has a fixed size rule")


def _least_shrink(run: Runner, n: int, shrink: int, step: int) -> tuple[int, int, int]:
    """A graph that also runs between ``n`` and ``n + step`` (crops computed from shapes,
    floor-rounded pooling): the legal size of that period is the one losing the fewest pixels."""
    tried = [n + 2**i for i in range(step.bit_length()) if 2**i < step]  # cached runs
    if all(_shrink_at(run, m) is None for m in tried):
        return n, shrink, step
    shrinks = {m: _shrink_at(run, m) for m in range(n, n + step)}
    best = min((s, m) for m, s in shrinks.items() if s is not None)
    return best[1], best[0], step


def _legal_sizes(run: Runner, fixed: int | None) -> tuple[int, int, int]:
    """(min_input, step, shrink): the legal sizes and the output rule."""
    if fixed is not None:
        out = run.out_size(fixed)
        if out is None or (fixed - out) % 2 or out < 1:
            raise ProbeError(
                f"the fixed-size graph ({fixed}x{fixed}) gave output size {out}; expected "
                "a square output of the same size, or smaller by an even number of pixels"
            )
        return fixed, 0, (fixed - out) // 2
    first, shrink, step = _first_legal(run)
    if not run.out_size(first + 2 * step) == first + 2 * step - 2 * shrink:
        raise ProbeError(
            f"the graph runs on {first} and {first + step} px but not on {first + 2 * step}: "
            "no regular rule of legal input sizes; it is not a U-Net unet-edge can tile"
        )
    lo, hi = 0, (first - 1) // step  # binary search: first - k*step is legal for k <= answer
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _shrink_at(run, first - mid * step) == shrink:
            lo = mid
        else:
            hi = mid - 1
    return first - lo * step, step, shrink


def _shift_period(run: Runner, size: int, shrink: int, band: Callable[[int], int]) -> int | None:
    """Smallest power-of-two shift s with f(x shifted by s) == f(x) shifted by s, or None.

    Compared on the outputs' overlap minus ``band(s)`` pixels at every edge.
    """
    x = noise((run.c, size + MAX_ALIGNMENT, size + MAX_ALIGNMENT), seed=1)
    y0 = run.must(x[:, :size, :size])
    s = 1
    while s <= MAX_ALIGNMENT:
        b = band(s)
        hi = y0.shape[1] - s - b
        if hi - b < 4:
            return None
        ys = run(x[:, s : s + size, s : s + size])
        if ys is not None and close(ys[:, b:hi, b:hi], y0[:, b + s : hi + s, b + s : hi + s]):
            return s
        s *= 2
    return None


def _output_kind(run: Runner, size: int, margin: int) -> tuple[int, OutputKind]:
    """(output channels, what they hold), from one run on a random ``size`` x ``size`` input
    (the ``margin`` at each edge, which tiles drop, left out: a wrapper's zero border)."""
    y = run.must(noise((run.c, size, size), seed=3))
    if y.shape[1] > 2 * margin and y.shape[2] > 2 * margin:
        y = y[:, margin : y.shape[1] - margin, margin : y.shape[2] - margin]
    k = y.shape[0]
    unit = float(y.min()) >= -1e-6 and float(y.max()) <= 1 + 1e-6
    if k >= 2 and unit and float(np.abs(y.sum(axis=0) - 1).max()) < 1e-3:
        return k, OutputKind.PROBABILITIES
    if k == 1 and unit:
        return k, OutputKind.SIGMOID
    return k, OutputKind.LOGITS


def _dead_border(run: Runner, size: int) -> int:
    """Widest border (px) of output rows or columns that no input changes, on a legal ``size``.

    A valid network wrapped to keep its input's size (a bioimage.io package of
    unet-edge's: crop, network, zero padding back) has such a border, as wide
    as its halo; any other network has none.
    """
    a, b = run(natural(run.c, size, size, seed=41)), run(noise((run.c, size, size), seed=42))
    if a is None or b is None or a.shape != b.shape:
        return 0
    same = np.all(a == b, axis=0)
    widths = []
    for lines in (same.all(axis=1), same.all(axis=0)):  # rows, columns
        for edge in (lines, lines[::-1]):
            widths.append(len(edge) if edge.all() else int(np.argmin(edge)))
    return max(widths)


def _geometry(run: Runner, legal: tuple[int, int, int]) -> tuple[TileGeometry, int | None]:
    """The tile geometry and the receptive-field radius (None when not needed)."""
    min_input, step, shrink = legal
    dead = _dead_border(run, round_up_size(min_input, step, 2 * shrink + 256))
    size = round_up_size(min_input, step, 2 * (shrink + dead) + MAX_ALIGNMENT + 16)
    valid = shrink > 0 or dead > 0  # equivariant up to the edges (of what the graph computes)
    period = _shift_period(run, size, shrink, lambda s: dead) if valid else None
    if period is not None:  # no padding effects to crop but the dead border
        return TileGeometry(min_input, step, period, shrink, dead), None
    rf_size = round_up_size(min_input, step, 256)
    radius = verify.influence(run, rf_size, shrink, (0, 1, 3, 6)).radius
    size = round_up_size(min_input, step, 2 * shrink + 2 * radius + 4 * MAX_ALIGNMENT)
    if size > MAX_PROBE_SIZE and step:
        size = round_up_size(min_input, step, MAX_PROBE_SIZE)
    period = _shift_period(run, size, shrink, lambda s: max(0, radius + s - shrink))
    if period is None:
        raise ProbeError(
            f"no translation period up to {MAX_ALIGNMENT} px found (shifted inputs never gave "
            "shifted outputs): not a convolutional U-Net, or its input is too small to probe"
        )
    margin = max(0, radius + period - shrink)
    return TileGeometry(min_input, step, period, shrink, margin), radius


def _proto(model: str | Path | bytes) -> Any:
    """The graph as an ``onnx.ModelProto`` (weights held outside it are not read)."""
    import onnx

    if isinstance(model, bytes):
        return onnx.load_from_string(model)
    return onnx.load(str(model), load_external_data=False)


def _measure(model: str | Path | bytes, label: str, seconds: float, flops: float) -> Probe:
    """Measure, then verify (see the module's docstring); errors may lack ``label``."""
    g = Graph(model, label)
    batch, channels, fixed = _signature(g)
    check_cost(_proto(model), fixed or SCAN_START, label, flops)
    run = Runner(g, channels, batch, label, seconds)
    legal = _legal_sizes(run, fixed)
    min_input, step, shrink = legal
    verify.check_behaviour(run, round_up_size(min_input, step, 2 * shrink + MAX_ALIGNMENT + 16))
    geometry, radius = _geometry(run, legal)
    if geometry.output_size(geometry.min_input) < 1:
        raise ProbeError(f"probed geometry {geometry} leaves no output to keep")
    # valid (to the edges of what it computes): a reach of about its shrink, or its dead border
    border = geometry.margin if radius is None else 0
    reach = max(shrink, border) + geometry.alignment if radius is None else radius
    seen = verify.check_shift(run, geometry, reach, border)
    if radius is not None and seen.radius > radius:  # more positions tried: a farther reach
        radius = seen.radius
        geometry = replace(geometry, margin=max(0, radius + geometry.alignment - shrink))
    verify.check_structure(run, geometry)
    out_channels, kind = _output_kind(
        run, geometry.round_up(2 * geometry.halo + 32), geometry.margin
    )
    verify.check_tiling(run, geometry, out_channels)
    return Probe(geometry, channels, out_channels, kind, radius, g.input.name, g.output.name, batch)


def probe(
    model: str | Path | bytes,
    *,
    name: str | None = None,
    max_seconds: float = MAX_SECONDS,
    max_flops_per_pixel: float = MAX_FLOPS_PER_PIXEL,
) -> Probe:
    """Probe an ONNX graph (a path or its bytes); see the module's docstring for what is found.

    ``name`` names the model in errors (default: the path, or "the graph" for
    bytes). Probing is refused when the graph needs more than
    ``max_flops_per_pixel`` (estimated before running it) or running it would
    take more than ``max_seconds``.

    Raises:
        ProbeError: the graph is not a network unet-edge can tile exactly, or
            costs too much to probe (one line, naming the model).
        ModelError: ONNX Runtime cannot load it.
    """
    label = name or ("the graph" if isinstance(model, bytes) else str(model))
    try:
        return _measure(model, label, max_seconds, max_flops_per_pixel)
    except ModelError as e:  # ProbeError, or the kernel's refusal of an output's shape
        if str(e).startswith(label):
            raise
        raise type(e)(f"{label}: {e}", option=e.option) from None
