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
  shift test holds up to the output's edges (a valid-convolution net);
  otherwise the receptive-field radius (how far a perturbed pixel changes
  the output) plus one alignment period, like :attr:`Geometry.halo` of a
  same-padded U-Net;
- the channels, and whether the output is probabilities, logits or a sigmoid.

A graph that is not a dense, local image-to-image network (a classifier
output, a 3-D input, a global operation) raises :class:`ProbeError`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError, ProbeError
from ..geometry import TileGeometry, round_up_size

#: Shifts tried for the translation period (a max-pooling net of depth d has 2**d).
MAX_ALIGNMENT = 64
#: Input sizes tried for a first legal size (from 256 up: a valid net of depth 5 fits).
SCAN_START, SCAN_SPAN = 256, 2 * MAX_ALIGNMENT
#: Largest probe input side; a receptive field reaching this far is not a local network.
MAX_PROBE_SIZE = 1024
# Relative to the output's magnitude: what "equal" means for two runs. Shifting by the true
# period repeats every output pixel's computation exactly (0.0 difference on the CPU), while
# a wrong shift differs by >= ~1e-6 even where the deep levels contribute little.
_TOL = 1e-7


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


class _Graph:
    """The graph on a quiet CPU session: ``run(x)`` gives the output, or None if it fails."""

    def __init__(self, source: str | Path | bytes) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.log_severity_level = 4  # probing fails on purpose; keep ORT's error log quiet
        try:
            self.session = ort.InferenceSession(
                source if isinstance(source, bytes) else str(source),
                so,
                providers=["CPUExecutionProvider"],
            )
        except Exception as e:  # ORT raises its own exception types for unreadable graphs
            raise ModelError(f"onnxruntime cannot load the model ({type(e).__name__}: {e})") from e
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1:
            raise ProbeError(
                f"the graph has {len(inputs)} inputs {[i.name for i in inputs]}; an image-to-image "
                "network takes one (N, C, H, W) image"
            )
        self.input, self.output = inputs[0], outputs[0]
        self.dtype = np.float16 if "float16" in self.input.type else np.float32

    def run(self, x: np.ndarray) -> np.ndarray | None:
        """(N, C, h, w) input -> (N, K, h', w') float32 output, or None if the graph refuses it."""
        try:
            y = self.session.run([self.output.name], {self.input.name: x.astype(self.dtype)})[0]
        except Exception:  # an illegal size: ORT's Fail/InvalidArgument/RuntimeException
            return None
        return np.asarray(y, np.float32)


def _signature(g: _Graph) -> tuple[int | None, int, int | None]:
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


def _rng_input(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Reproducible uniform [0, 1) float32 values of ``shape`` (the probes' inputs)."""
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


class _Runner:
    """Runs square inputs through the graph and remembers the output size per input size."""

    def __init__(self, g: _Graph, channels: int, batch: int | None) -> None:
        self.g, self.c, self.n = g, channels, batch or 1
        self.sizes: dict[int, int | None] = {}

    def __call__(self, x: np.ndarray) -> np.ndarray | None:
        """x: (C, h, w) -> (K, h', w') or None."""
        y = self.g.run(np.broadcast_to(x, (self.n, *x.shape)))
        return None if y is None or y.ndim != 4 else y[0]

    def out_size(self, n: int) -> int | None:
        """The output side for an ``n`` x ``n`` input, or None when the graph refuses it."""
        if n not in self.sizes:
            y = self(_rng_input((self.c, n, n)))
            ok = y is not None and y.shape[1] == y.shape[2]
            self.sizes[n] = int(y.shape[1]) if ok and y is not None else None
        return self.sizes[n]


def _shrink_at(run: _Runner, n: int) -> int | None:
    """(n - output) / 2 when the graph runs on ``n`` and keeps a square output, else None."""
    out = run.out_size(n)
    return None if out is None or out < 1 or (n - out) % 2 else (n - out) // 2


def _first_legal(run: _Runner) -> tuple[int, int, int]:
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


def _least_shrink(run: _Runner, n: int, shrink: int, step: int) -> tuple[int, int, int]:
    """A graph that also runs between ``n`` and ``n + step`` (crops computed from shapes,
    floor-rounded pooling): the legal size of that period is the one losing the fewest pixels."""
    tried = [n + 2**i for i in range(step.bit_length()) if 2**i < step]  # cached runs
    if all(_shrink_at(run, m) is None for m in tried):
        return n, shrink, step
    shrinks = {m: _shrink_at(run, m) for m in range(n, n + step)}
    best = min((s, m) for m, s in shrinks.items() if s is not None)
    return best[1], best[0], step


def _legal_sizes(run: _Runner, fixed: int | None) -> tuple[int, int, int]:
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


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    """Two equal-shape, non-empty outputs agree up to :data:`_TOL` of their magnitude."""
    scale = 1.0 + float(max(np.abs(a).max(initial=0), np.abs(b).max(initial=0)))
    return a.size > 0 and float(np.abs(a - b).max()) <= _TOL * scale


def _shift_period(run: _Runner, size: int, shrink: int, band: Callable[[int], int]) -> int | None:
    """Smallest power-of-two shift s with f(x shifted by s) == f(x) shifted by s, or None.

    Compared on the outputs' overlap minus ``band(s)`` pixels at every edge.
    """
    x = _rng_input((run.c, size + MAX_ALIGNMENT, size + MAX_ALIGNMENT), seed=1)
    y0 = run(x[:, :size, :size])
    if y0 is None:
        raise ProbeError(f"the graph failed on a legal {size}x{size} input")
    s = 1
    while s <= MAX_ALIGNMENT:
        b = band(s)
        hi = y0.shape[1] - s - b
        if hi - b < 4:
            return None
        ys = run(x[:, s : s + size, s : s + size])
        if ys is not None and _close(ys[:, b:hi, b:hi], y0[:, b + s : hi + s, b + s : hi + s]):
            return s
        s *= 2
    return None


def _receptive_field(run: _Runner, size: int, shrink: int) -> int:
    """Largest distance (px) at which a perturbed input pixel changes the output (a few spots)."""
    x = _rng_input((run.c, size, size), seed=2)
    y0 = run(x)
    assert y0 is not None
    radius, centre = 0, size // 2
    for d in (0, 1, 3, 6):  # a few positions relative to the pooling grid
        p = centre + d
        xp = x.copy()
        xp[:, p, p] += 10.0
        yp = run(xp)
        assert yp is not None
        changed = np.argwhere(np.abs(yp - y0).max(axis=0) > 0)  # exact: untouched pixels repeat
        if changed.size == 0:
            continue
        last = y0.shape[1] - 1
        if changed.min() == 0 or changed.max() == last:
            raise ProbeError(
                f"changing one input pixel changes the output {size // 2} px away (at the edge "
                f"of a {size}x{size} probe): not a local convolutional network, so it cannot be "
                "tiled exactly (a global operation such as attention or global pooling?)"
            )
        radius = max(radius, int(np.abs(changed + shrink - p).max()))
    return radius


def _output_kind(run: _Runner, size: int) -> tuple[int, OutputKind]:
    """(output channels, what they hold), from one run on a random ``size`` x ``size`` input."""
    y = run(_rng_input((run.c, size, size), seed=3))
    assert y is not None
    k = y.shape[0]
    unit = float(y.min()) >= -1e-6 and float(y.max()) <= 1 + 1e-6
    if k >= 2 and unit and float(np.abs(y.sum(axis=0) - 1).max()) < 1e-3:
        return k, OutputKind.PROBABILITIES
    if k == 1 and unit:
        return k, OutputKind.SIGMOID
    return k, OutputKind.LOGITS


def _geometry(run: _Runner, fixed: int | None) -> tuple[TileGeometry, int | None]:
    """The tile geometry and the receptive-field radius (None when not needed)."""
    min_input, step, shrink = _legal_sizes(run, fixed)
    size = round_up_size(min_input, step, 2 * shrink + MAX_ALIGNMENT + 16)
    period = None if shrink == 0 else _shift_period(run, size, shrink, lambda s: 0)
    if period is not None:  # equivariant up to the edges: no padding effects to crop
        return TileGeometry(min_input, step, period, shrink, 0), None
    rf_size = round_up_size(min_input, step, 256)
    radius = _receptive_field(run, rf_size, shrink)
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


def probe(model: str | Path | bytes) -> Probe:
    """Probe an ONNX graph (a path or its bytes); see the module's docstring for what is found."""
    g = _Graph(model)
    batch, channels, fixed = _signature(g)
    run = _Runner(g, channels, batch)
    geometry, radius = _geometry(run, fixed)
    if geometry.output_size(geometry.min_input) < 1:
        raise ProbeError(f"probed geometry {geometry} leaves no output to keep")
    out_channels, kind = _output_kind(run, geometry.round_up(2 * geometry.halo + 32))
    return Probe(geometry, channels, out_channels, kind, radius, g.input.name, g.output.name, batch)
