"""What this machine can do, measured in the same run as the model: the roof of the roofline.

The achieved GFLOP/s of the model is ``cost.conv_flops`` per tile times tiles
over the inference time; the machine's fp32 peak (:func:`gemm_peak`) is an
SGEMM measured by numpy in a subprocess, once with the environment as it is
and once with ``OPENBLAS_CORETYPE``/``OPENBLAS_L2_SIZE`` unset (only in that
subprocess); the higher is the peak quoted. Beside it, the fp32 FMA ceiling
(:func:`fma_ceiling`: 12 independent FMA chains per thread in C, AVX-512 or
AVX2, ``fma.c`` in this package built with the C compiler in the same run;
left out without one). :func:`machine` describes the machine for the results.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .. import cpu

__all__ = ["fma_ceiling", "gemm_peak", "machine"]

# Run by a fresh interpreter, so that the OpenBLAS variables it is given are the ones
# OpenBLAS reads when numpy loads it; prints one JSON line.
_GEMM = r"""
import ctypes, json, os, sys, time
import numpy as np
n = int(sys.argv[1])
a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
a @ b
best = float("inf")
for _ in range(5):
    t = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t)
core = None
SYMS = ("scipy_openblas_get_corename64_", "openblas_get_corename64_", "openblas_get_corename")
for line in open("/proc/self/maps"):
    path = line.split()[-1]
    if "openblas" in path.lower() and ".so" in path:
        lib = ctypes.CDLL(path)
        for sym in SYMS:
            f = getattr(lib, sym, None)
            if f is not None:
                f.restype = ctypes.c_char_p; core = f().decode(); break
        if core: break
print(json.dumps({"gflops": 2 * n**3 / best / 1e9, "seconds": best, "openblas_core": core,
                  "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE")}))
"""


def gemm_peak(n: int = 4096, threads: int | None = None) -> dict[str, Any]:
    """fp32 SGEMM GFLOP/s of numpy in subprocesses: environment as is, and OpenBLAS vars unset.

    ``n``: the side of the square float32 matrices; ``threads``: OpenBLAS
    threads (default: its own). Keys: ``runs`` (each environment's figures,
    or its ``error``), ``peak_gflops`` and ``peak_from`` (the better run; None
    if both failed), ``n`` and the OpenBLAS ``environment`` as given.
    """
    runs: dict[str, Any] = {}
    for label, unset in (("env", False), ("openblas_vars_unset", True)):
        env = dict(os.environ)
        if unset:
            env.pop("OPENBLAS_CORETYPE", None)
            env.pop("OPENBLAS_L2_SIZE", None)
        if threads:
            env["OPENBLAS_NUM_THREADS"] = str(threads)
        try:
            done = subprocess.run(
                [sys.executable, "-c", _GEMM, str(n)],
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                check=True,
            )
            runs[label] = json.loads(done.stdout.strip().splitlines()[-1])
        except (subprocess.SubprocessError, ValueError, IndexError) as e:
            runs[label] = {"error": f"{type(e).__name__}: {e}"}
    ok = {k: v for k, v in runs.items() if "gflops" in v}
    best = max(ok, key=lambda k: ok[k]["gflops"]) if ok else None
    return {
        "n": n,
        "runs": runs,
        "peak_gflops": ok[best]["gflops"] if best else None,
        "peak_from": best,
        "environment": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")},
    }


def fma_ceiling(threads: int | None = None, iterations: int = 50_000_000) -> dict[str, Any]:
    """The fp32 FMA ceiling in GFLOP/s: a C loop of 12 FMA chains per thread, built now.

    The C program is ``fma.c`` beside this module. Needs a C compiler with
    OpenMP (``$CC`` or ``cc``); without one the result holds ``error`` and no
    ``gflops``. ``threads``: OpenMP threads (default: every core). Keys:
    ``gflops``, ``isa`` (``avx512f`` or ``avx2+fma``) and ``threads``.
    """
    with (
        tempfile.TemporaryDirectory(prefix="unet-edge-fma-") as d,
        resources.as_file(resources.files("unet_edge.bench") / "fma.c") as src,
    ):
        exe = Path(d) / "fma"
        env = dict(os.environ, OMP_NUM_THREADS=str(threads or os.cpu_count() or 1))
        try:
            cc = os.environ.get("CC", "cc")
            subprocess.run([cc, "-O2", "-fopenmp", str(src), "-o", str(exe)],
                           capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
            done = subprocess.run([str(exe), str(iterations)], env=env, capture_output=True,
                                  text=True, timeout=600, check=True)  # fmt: skip
            out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        except (OSError, subprocess.SubprocessError, ValueError, IndexError) as e:
            detail = getattr(e, "stderr", "") or ""
            return {"error": f"{type(e).__name__}: {e} {detail[:200]}".strip()}
    out.pop("sink", None)
    return out


def machine() -> dict[str, Any]:
    """The machine the figures were measured on: CPU, cores, and the versions that matter."""
    import onnxruntime as ort

    return {
        "cpu": cpu.name(),
        "cpu_flags": cpu.describe(),
        "cpu_int8_saturates": cpu.int8_saturates(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnxruntime": ort.__version__,
        "platform": platform.platform(),
    }
