"""Running a foreign graph for the probe: a quiet CPU session, a time budget, test images.

:class:`Graph` loads the graph in ONNX Runtime on the CPU; :class:`Runner`
runs square or rectangular (C, h, w) inputs through it, remembers the output
size per input size, and refuses, with the figures, a run that would take
the probe past its time budget (predicted from the seconds per pixel of the
runs so far). The inputs: :func:`noise` (uniform, what the measurements use)
and :func:`natural` (1/f texture under changing illumination and contrast,
with dark and bright objects: local statistics unlike the whole image's, as
in real images, so a graph that branches on a global statistic of its input
gives itself away).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..errors import ModelError, ProbeError

__all__ = ["MAX_SECONDS", "Graph", "Runner", "close", "natural", "noise"]

#: Seconds of running the graph the probe spends at most.
MAX_SECONDS = 120.0


class Graph:
    """The graph on a quiet CPU session: ``run(x)`` gives the output, or None if it fails."""

    def __init__(self, source: str | Path | bytes, label: str) -> None:
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
            raise ModelError(
                f"{label}: onnxruntime cannot load the model ({type(e).__name__}: "
                f"{str(e).splitlines()[0] if str(e) else ''})"
            ) from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1:
            raise ProbeError(
                f"{label}: the graph has {len(inputs)} inputs {[i.name for i in inputs][:4]}; "
                "an image-to-image network takes one (N, C, H, W) image"
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


class Runner:
    """Runs (C, h, w) inputs through the graph within a time budget; remembers output sizes."""

    def __init__(
        self, g: Graph, channels: int, batch: int | None, label: str, max_seconds: float
    ) -> None:
        self.g, self.c, self.n, self.label = g, channels, batch or 1, label
        self.max_seconds = max_seconds
        self.sizes: dict[int, int | None] = {}
        self.seconds = 0.0  # spent running the graph
        self.pixels = 0  # input pixels run
        self.runs = 0

    def _budget(self, pixels: int) -> None:
        """Refuse a run predicted to take the probe past :attr:`max_seconds`."""
        rate = self.seconds / self.pixels if self.pixels else 0.0
        if self.seconds + rate * pixels > self.max_seconds:
            raise ProbeError(
                f"{self.label}: probing it would take more than {self.max_seconds:.0f} s of "
                f"running the graph ({self.runs} runs took {self.seconds:.1f} s, "
                f"{1e6 * rate:.2f} s per megapixel; the next needs {pixels / 1e6:.2f} "
                "megapixels); give it unet-edge metadata, or raise the probe's max_seconds"
            )

    def __call__(self, x: np.ndarray) -> np.ndarray | None:
        """x: (C, h, w) -> (K, h', w') or None."""
        self._budget(x.shape[1] * x.shape[2] * self.n)
        t0 = time.perf_counter()
        y = self.g.run(np.broadcast_to(x, (self.n, *x.shape)))
        self.seconds += time.perf_counter() - t0
        self.pixels += x.shape[1] * x.shape[2] * self.n
        self.runs += 1
        return None if y is None or y.ndim != 4 else y[0]

    def must(self, x: np.ndarray) -> np.ndarray:
        """x: (C, h, w) of a legal size -> (K, h', w'); a graph that fails on it is refused."""
        y = self(x)
        if y is None:
            raise ProbeError(
                f"{self.label}: the graph failed on a legal {x.shape[1]}x{x.shape[2]} input "
                f"with values in {float(x.min()):.3g}..{float(x.max()):.3g}, though it ran on "
                "others of that size"
            )
        return y

    def out_size(self, n: int) -> int | None:
        """The output side for an ``n`` x ``n`` input, or None when the graph refuses it."""
        if n not in self.sizes:
            y = self(noise((self.c, n, n)))
            ok = y is not None and y.shape[1] == y.shape[2]
            self.sizes[n] = int(y.shape[1]) if ok and y is not None else None
        return self.sizes[n]

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """(N, C, h, w) -> (N, K, h', w'), one image at a time (a predictor for the kernel)."""
        return np.stack([self.must(x) for x in batch])


def noise(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Reproducible uniform [0, 1) float32 values of ``shape`` (the measurements' inputs)."""
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def natural(channels: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """A (C, h, w) float32 image that looks natural to a network trained on normalised images.

    1/f texture (the spectrum of natural images), under illumination rising
    from -1.5 to 2.5 across it and contrast from 0.1 to 1.5 down it, with a
    dark and a bright blob: tiles of it have means, spreads and extremes far
    from the whole image's.
    """
    rng = np.random.default_rng(seed)
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None, :]
    f = np.hypot(fy, fx)
    f[0, 0] = 1.0
    tex = np.fft.irfft2(np.fft.rfft2(rng.standard_normal((channels, h, w))) / f, s=(h, w))
    tex = (tex - tex.mean()) / max(float(tex.std()), 1e-12)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w, 1)
    img = (-1.5 + 4.0 * xx) + (0.1 + 1.4 * yy) * tex
    for cy, cx, r, v in ((0.3, 0.7, 0.12, -3.0), (0.7, 0.25, 0.1, 4.0)):
        img[:, ((yy - cy) ** 2 + (xx - cx) ** 2) < r * r] = v
    return img.astype(np.float32)


#: Relative to the outputs' magnitude: what "equal" means for two runs of the same size.
#: Shifting by the true period repeats every output pixel's computation exactly (0.0
#: difference on the CPU), while a wrong shift differs by >= ~1e-6.
TOL = 1e-7


def close(a: np.ndarray, b: np.ndarray, tol: float = TOL) -> bool:
    """Two equal-shape, non-empty outputs agree up to ``tol`` of their magnitude."""
    return a.size > 0 and difference(a, b) <= tol


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """Largest difference of two equal-shape outputs, relative to 1 + their magnitude."""
    scale = 1.0 + float(max(np.abs(a).max(initial=0), np.abs(b).max(initial=0)))
    return float(np.abs(a - b).max(initial=0)) / scale
