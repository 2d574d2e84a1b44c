"""The bench's backends (unet_edge/bench/backends.py): each asked-for backend opened on this
machine, or skipped with a one-line reason, never an exception."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from unet_edge.bench.backends import open_backends
from unet_edge.bench.config import BenchConfig
from unet_edge.engines import select


def test_ort_fp32_runs_and_what_cannot_run_says_why(tiny_onnx: Path, tmp_path: Path) -> None:
    names = ("ort-fp32", "cuda-fp32", "tensorrt-fp16", "openvino-fp32")
    cfg = BenchConfig.quick_config(tiny_onnx, None, tmp_path, backends=names)
    backends, int8 = open_backends(cfg, tmp_path, [])
    try:
        assert [b.name for b in backends] == list(names) and int8 is None
        by = {b.name: b for b in backends}
        fp32 = by["ort-fp32"]
        assert fp32.skipped is None and fp32.predictor is not None
        batch = np.zeros((1, 1, 188, 188), np.float32)
        assert fp32.predictor(batch).shape == (1, 2, 4, 4)
        for name, prov in (("cuda-fp32", "cuda"), ("tensorrt-fp16", "tensorrt")):
            why = select.unavailable_reason(prov)
            if why is not None:
                assert by[name].predictor is None and by[name].skipped
                assert "\n" not in by[name].skipped  # type: ignore[operator]
        if importlib.util.find_spec("openvino") is None:
            assert by["openvino-fp32"].skipped == (
                "openvino is not installed (pip install 'unet-edge[openvino]')"
            )
    finally:
        for b in backends:
            b.close()


def test_without_torch_the_baseline_is_skipped(
    tiny_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    cfg = BenchConfig.quick_config(tiny_onnx, None, tmp_path, backends=("torch",))
    (torch,), _ = open_backends(cfg, tmp_path, [])
    assert torch.predictor is None
    assert torch.skipped == "torch is not installed (pip install 'unet-edge[train]')"


def test_a_given_int8_model_is_used_as_it_is(tiny_onnx: Path, tmp_path: Path) -> None:
    cfg = BenchConfig.quick_config(
        tiny_onnx, None, tmp_path, backends=("ort-int8",), int8_model=tiny_onnx
    )
    (b,), int8 = open_backends(cfg, tmp_path, [])
    try:
        assert b.skipped is None and int8 == {"ort-int8": {"model": str(tiny_onnx)}}
        assert list(tmp_path.iterdir()) == []  # nothing quantised
    finally:
        b.close()
