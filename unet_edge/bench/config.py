"""What the benchmark measures (:class:`BenchConfig`), and what this install leaves out.

:func:`preflight` checks the optional packages before anything is measured,
so that every row left out is said up front, with a one-line reason and what
to install.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import metadata
from ..errors import ConfigError
from .data import find_data

__all__ = ["ALL_BACKENDS", "OPTIONAL", "STAGES", "BenchConfig", "preflight"]

#: The stages of one timed frame, in order (seconds per stage in every row).
STAGES = ("read", "normalise", "tile", "infer", "stitch", "write")
#: Every backend the benchmark knows, in the order they are measured.
ALL_BACKENDS = (
    "torch",
    "ort-fp32",
    "ort-int8",
    "cuda-fp32",
    "tensorrt-fp32",
    "tensorrt-fp16",
    "openvino-fp32",
    "openvino-bf16",
    "openvino-int8",
)


@dataclass
class BenchConfig:
    """What to measure. The defaults are the full run (minutes on 2 cores)."""

    model: Path
    data: Path | None  # None: the packaged sample; else a folder with image/ [and label/]
    out_dir: Path
    sizes: tuple[int, ...] = (512, 1024, 2048, 4096)
    backends: tuple[str, ...] = ALL_BACKENDS
    tile: int | None = None  # None: the runtime's own choice per size
    batch_size: int = 1
    sweep_size: int = 2048
    tile_sweep: tuple[int, ...] = (380, 572, 764, 1148, 1340)
    batch_sweep: tuple[int, ...] = (1, 2, 4)
    min_repeats: int = 3
    max_repeats: int = 20
    min_seconds: float = 3.0
    threads: int | None = None
    int8_model: Path | None = None
    int8_threshold: float | None = None  # None: precision.AGREEMENT_THRESHOLD
    calibration: tuple[str, ...] | None = None  # None: the first n_calibration non-fidelity images
    fidelity: tuple[str, ...] | None = None  # None: the last n_fidelity (labelled) images
    n_calibration: int = 10
    n_fidelity: int = 5
    gemm_n: int = 4096
    quick: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.min_repeats <= self.max_repeats:
            raise ConfigError(
                f"need 1 <= min_repeats <= max_repeats, got {self.min_repeats}, {self.max_repeats}"
            )
        if self.batch_size < 1 or not self.sizes or min(self.sizes) < 1:
            raise ConfigError("batch_size must be >= 1 and sizes positive and not empty")
        if self.n_calibration < 1 or self.n_fidelity < 1:
            raise ConfigError("n_calibration and n_fidelity must be >= 1")
        unknown = [b for b in self.backends if b not in ALL_BACKENDS]
        if unknown or not self.backends:
            raise ConfigError(
                f"unknown backend(s) {unknown}; choose from {', '.join(ALL_BACKENDS)}"
            )

    @classmethod
    def quick_config(cls, model: Path, data: Path | None, out_dir: Path, **kw: Any) -> BenchConfig:
        """Seconds, not minutes: one small size, one repeat, small sweeps, one image each."""
        base: dict[str, Any] = dict(
            sizes=(512,),
            sweep_size=512,
            tile_sweep=(380, 572),
            batch_sweep=(1, 2),
            min_repeats=1,
            max_repeats=1,
            min_seconds=0.0,
            n_calibration=1,
            n_fidelity=1,
            gemm_n=1024,
            quick=True,
        )
        base.update(kw)
        return cls(model=model, data=data, out_dir=out_dir, **base)


#: What each optional package gives the benchmark: (module, install hint, what is left out).
OPTIONAL: dict[str, tuple[str, str, str]] = {
    "torch": ("torch", "pip install 'unet-edge[train]'", "PyTorch baseline not measured"),
    "openvino": ("openvino", "pip install 'unet-edge[openvino]'", "OpenVINO not measured"),
    "plot": ("matplotlib", "pip install matplotlib", "bench.png not drawn"),
    "memory": ("psutil", "pip install psutil", "peak memory not measured"),
    "rand_error": ("skimage", "pip install 'unet-edge[eval]'", "adapted Rand error not computed"),
}


def _missing(module: str, install: str) -> str | None:
    """None if ``module`` imports, else why not and what to install (one line)."""
    try:
        importlib.import_module(module)
    except ImportError as e:
        return f"{e.name or module} is not installed ({install})"
    return None


def preflight(cfg: BenchConfig) -> dict[str, str]:
    """What this run will leave out, one line each, checked before anything is measured.

    Keys: ``torch`` and ``openvino`` (when asked for), ``plot``, ``memory``,
    and ``rand_error`` (when the data has labels). Also raises at once for a
    missing model or data folder.
    """
    metadata.read(cfg.model)
    data = find_data(cfg.data)
    asked = {b.split("-")[0] for b in cfg.backends}
    wanted = [k for k in ("torch", "openvino") if k in asked] + ["plot", "memory"]
    if data.labels:
        wanted.append("rand_error")
    out = {}
    for key in wanted:
        module, install, what = OPTIONAL[key]
        why = _missing(module, install)
        if why:
            out[key] = f"{what}: {why}"
    return out
