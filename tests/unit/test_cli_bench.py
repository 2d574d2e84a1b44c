"""``unet-edge bench`` (unet_edge/cli/bench.py): its options become a BenchConfig, what cannot
be measured is refused before measuring (the full run is tested in test_bench.py)."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from cli_helpers import one_line_error
from click.testing import CliRunner

from unet_edge.cli import main
from unet_edge.cli.bench import _options


def test_options_become_bench_config_keywords() -> None:
    assert _options(None, None, None, None) == {}
    kw = _options("512,2048", "ort-fp32, torch,", "00-02", "20,24")
    assert kw == {
        "sizes": (512, 2048),
        "backends": ("ort-fp32", "torch"),
        "calibration": ("00", "01", "02"),
        "fidelity": ("20", "24"),
    }
    with pytest.raises(click.BadParameter, match="expected sides like 512,2048, got '512x512'"):
        _options("512x512", None, None, None)


def test_an_unknown_backend_is_one_line_before_anything_runs(
    tiny_onnx: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    args = ["bench", "--quick", "-m", str(tiny_onnx), "-o", str(out), "--backends", "ort-fp33"]
    line = one_line_error(CliRunner().invoke(main, args))
    assert "unknown backend" in line and "ort-fp33" in line
    assert not out.exists() or list(out.iterdir()) == []


def test_bad_sizes_are_a_usage_error(tiny_onnx: Path, tmp_path: Path) -> None:
    args = ["bench", "-m", str(tiny_onnx), "-o", str(tmp_path / "r"), "--sizes", "big"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2 and "expected sides like 512,2048, got 'big'" in r.output
