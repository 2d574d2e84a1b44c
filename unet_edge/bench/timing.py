"""One frame through the pipeline with a clock on every stage, and the peak memory beside it.

Each frame goes through the one kernel (built by :func:`unet_edge.kernel.for_frame`),
timed per stage: ``read`` (the file), ``normalise``, ``tile`` (mirror-pad and
cut), ``infer``, ``stitch`` and ``write`` (mask to PNG).
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .. import io, kernel, metadata, processing, tiling
from .config import STAGES

__all__ = ["PeakRSS", "timed_frame"]


def _clocked(t: dict[str, float], stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, adding the seconds of each call to ``t[stage]`` (also when it raises)."""

    def wrapped(*args: Any) -> Any:
        """``fn(*args)``, timed."""
        a = time.perf_counter()
        try:
            return fn(*args)
        finally:
            t[stage] += time.perf_counter() - a

    return wrapped


def timed_frame(
    path: Path,
    info: metadata.ModelInfo,
    plan: tiling.TilePlan,
    predictor: tiling.Predictor,
    batch_size: int,
    out_path: Path,
) -> tuple[np.ndarray, dict[str, float]]:
    """Read, normalise, tile, infer, stitch and write one frame; (probabilities, seconds per stage).

    The kernel (:func:`unet_edge.kernel.for_frame`) with a clock around its
    reader ("tile": mirrored windows), its prepare step ("normalise", with the
    image's statistics) and the predictor ("infer"); what remains of the
    kernel's time is "stitch". Plus the file I/O of ``unet-edge run``.
    The probabilities are float32 (classes, H, W); the seconds are keyed by
    :data:`~unet_edge.bench.config.STAGES`.
    """
    t: dict[str, float] = dict.fromkeys(STAGES, 0.0)
    c = time.perf_counter
    t0 = c()
    image = io.read_image(path)
    t1 = c()
    scaling = processing.scaling_for(image, info.normalization, info.channels)
    t["read"], t["normalise"] = t1 - t0, c() - t1
    run = kernel.for_frame(
        info, image, plan, scaling, batch_size=batch_size, wrap=functools.partial(_clocked, t)
    )
    a, before = c(), t["normalise"]
    dest = run.run(_clocked(t, "infer", predictor))
    t["stitch"] = c() - a - t["tile"] - (t["normalise"] - before) - t["infer"]
    a = c()
    mask = processing.to_mask(dest)
    io.write_png(out_path, processing.mask_to_image(mask, info.classes))
    t["write"] = c() - a
    return dest, t


class PeakRSS:
    """Samples the process's resident memory in a thread; ``peak`` in bytes (None: no psutil)."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.peak = self.start = 0
        self._stop = threading.Event()
        self._proc: Any = None

    def _rss(self) -> int:
        """The resident set size now, in bytes (0 without psutil)."""
        return int(self._proc.memory_info().rss) if self._proc is not None else 0

    def __enter__(self) -> PeakRSS:
        with contextlib.suppress(ImportError):  # psutil is optional: then no memory figures
            import psutil

            self._proc = psutil.Process()
        self.start = self.peak = self._rss()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        """Sample until stopped (the thread's body)."""
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    def mib(self, since_start: bool = False) -> float | None:
        """The peak in MiB (``since_start``: above the start), or None without psutil."""
        if self._proc is None:
            return None
        return (self.peak - (self.start if since_start else 0)) / 2**20
