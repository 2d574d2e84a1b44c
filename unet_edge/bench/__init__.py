"""The benchmark behind ``unet-edge bench``: speed and fidelity of every backend, side by side.

One model, one set of images, one tiling per image size; only the backend
changes (PyTorch eager, ONNX Runtime fp32 and int8, CUDA/TensorRT, OpenVINO).
Every timed output is checked against the reference backend's, and against
the labels where there are any; the achieved GFLOP/s of the model is set
against the machine's SGEMM peak and FMA ceiling measured in the same run.

One module a concern:

- :mod:`.config`: what to measure (:class:`BenchConfig`, the backends, the
  stages) and :func:`preflight`, which says up front what a missing
  optional package leaves out;
- :mod:`.data`: the images (the packaged sample, or a folder with
  ``image/`` and optionally ``label/``), and the mosaics made of them;
- :mod:`.timing`: one frame through the one kernel, timed per stage, and
  the peak memory sampler;
- :mod:`.backends`: a predictor per backend, or why it cannot run here (the
  only module that imports torch, lazily, for the baseline);
- :mod:`.roofline`: the SGEMM peak, the FMA ceiling (``fma.c``, built in the
  run) and the machine's description;
- :mod:`.measure`: rows per backend and size, tile and batch sweeps, fidelity;
- :mod:`.report`: ``bench.json``, ``bench.md`` and ``bench.png``;
- :mod:`.suite`: :func:`run`, all of it in order.

No targets live here: a project checks its own on the saved ``bench.json``
(this repository's are in ``benchmarks/``). Nothing here prints.
"""

from __future__ import annotations

from .config import ALL_BACKENDS, STAGES, BenchConfig, preflight
from .data import BenchData, find_data, sample_path, synth_image
from .measure import check_masks
from .report import markdown, plot, write_results
from .roofline import fma_ceiling, gemm_peak, machine
from .suite import run
from .timing import timed_frame

__all__ = [
    "ALL_BACKENDS",
    "STAGES",
    "BenchConfig",
    "BenchData",
    "check_masks",
    "find_data",
    "fma_ceiling",
    "gemm_peak",
    "machine",
    "markdown",
    "plot",
    "preflight",
    "run",
    "sample_path",
    "synth_image",
    "timed_frame",
    "write_results",
]
