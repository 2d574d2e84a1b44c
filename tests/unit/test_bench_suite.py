"""The whole bench in order (unet_edge/bench/suite.py): the result is JSON-ready, and every row
gets its shares of the machine's peaks and its speed relative to PyTorch and ORT fp32. (A
whole run is tested in test_bench.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from unet_edge.bench import suite


def test_results_are_json_ready() -> None:
    cfg = {"sizes": (512, 1024), "model": Path("/m.onnx"), "nested": [{"p": Path("x")}]}
    got = suite._jsonable(cfg)
    assert got == {"sizes": [512, 1024], "model": "/m.onnx", "nested": [{"p": "x"}]}
    assert json.loads(json.dumps(got)) == got


def test_ratios_against_the_peaks_and_the_baselines() -> None:
    rows = [
        {"backend": "torch", "size": 512, "wall_s": 4.0, "gflops": 10.0},
        {"backend": "ort-fp32", "size": 512, "wall_s": 2.0, "gflops": 20.0},
        {"backend": "ort-int8", "size": 512, "wall_s": 1.0, "gflops": 40.0},
        {"backend": "ort-fp32", "size": 1024, "wall_s": 8.0, "gflops": 25.0},
    ]
    suite._add_ratios(rows, peak=100.0, ceiling=None)
    assert [r["peak_share"] for r in rows] == [0.1, 0.2, 0.4, 0.25]
    assert all(r["ceiling_share"] is None for r in rows)  # no FMA ceiling measured
    assert [r["speedup_vs_torch"] for r in rows] == [1.0, 2.0, 4.0, None]  # no torch at 1024
    assert [r["speedup_vs_fp32"] for r in rows] == [0.5, 1.0, 2.0, 1.0]
    suite._add_ratios(rows, peak=None, ceiling=80.0)
    assert rows[2]["peak_share"] is None and rows[2]["ceiling_share"] == pytest.approx(0.5)
