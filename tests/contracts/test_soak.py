"""benchmarks/soak.py runs end to end (a few frames, a tiny model) and finds no mismatch."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"


def test_soak_runs_clean(tiny_onnx: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("soak", SOAK)
    assert spec and spec.loader
    soak = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(soak)
    args = ["--frames", "6", "--threads", "3", "--distinct", "3", "--size", "64"]
    assert soak.main([*args, "--model", str(tiny_onnx), "--isbi", "/nonexistent"]) == 0
    out = capsys.readouterr().out
    assert "stream   6 frames" in out and "0 mismatches, 0 errors" in out
    assert "smooth random 64x64" in out and "result   OK" in out
