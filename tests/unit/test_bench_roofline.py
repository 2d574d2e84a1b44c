"""The machine's ceilings (unet_edge/bench/roofline.py): the SGEMM peak in both BLAS
environments and the FMA ceiling measured in the run."""

from __future__ import annotations

import os

import pytest

from unet_edge import bench


def test_gemm_peak_reports_both_environments() -> None:
    peak = bench.gemm_peak(256)
    assert set(peak["runs"]) == {"env", "openblas_vars_unset"}
    assert peak["peak_gflops"] == max(r["gflops"] for r in peak["runs"].values())
    assert peak["peak_from"] in peak["runs"]


def test_fma_ceiling_is_measured_in_the_run() -> None:
    import platform
    import shutil

    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("the FMA ceiling is written for x86 (AVX2/AVX-512)")
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        pytest.skip(f"no C compiler ({cc}); the bench leaves the ceiling out, saying so")
    c = bench.fma_ceiling(1, 1_000_000)
    assert c["isa"] in ("avx512f", "avx2+fma") and c["threads"] == 1, c
    assert 1.0 < c["gflops"] < 1000.0  # one thread: 16 lanes x 2 FMA units x 2 x ~5 GHz at most
