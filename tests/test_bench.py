"""The benchmark: the FLOP count, the instrumented pipeline, and a quick run end to end."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from unet_edge import bench, cost, io, metadata, processing, tiling
from unet_edge.cli import main
from unet_edge.config import UNetConfig
from unet_edge.geometry import Geometry
from unet_edge.runtime import Segmenter

CONFIGS = [
    UNetConfig(),
    UNetConfig(base_width=16),
    UNetConfig(in_channels=3, classes=3, depth=2, base_width=2),
    UNetConfig(base_width=2, depth=3, padding="same", batch_norm=True),
    UNetConfig(base_width=4, depth=2, convs_per_level=3, kernel_size=5),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"d{c.depth}w{c.base_width}")
def test_conv_flops_matches_torch_trace(config: UNetConfig) -> None:
    pytest.importorskip("torch")
    from unet_edge.training.model import conv_gflops

    g = Geometry.from_config(config)
    legal = g.legal_inputs(g.min_input + 30 * g.alignment)
    for h, w in [(legal[0], legal[0]), (legal[3], legal[-1]), (legal[-1], legal[7])]:
        assert cost.conv_flops(config, h, w) == round(conv_gflops(config, h, w) * 1e9)
    assert cost.conv_flops(UNetConfig(), 572, 572) == pytest.approx(300.9e9, rel=1e-3)  # PERF.md


def test_torch_free_import() -> None:
    import subprocess

    mods = "unet_edge.bench, unet_edge.cost, unet_edge.precision"
    code = f"import sys, {mods}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_synth_image_mirrors_real_slices() -> None:
    rng = np.random.default_rng(0)
    slices = [rng.integers(0, 255, (64, 48), dtype=np.uint8) for _ in range(3)]
    im = bench.synth_image(slices, 150)
    assert im.shape == (150, 150) and im.dtype == np.uint8
    assert np.array_equal(im[:64, :48], slices[0])
    assert np.array_equal(im[:64, 48:96], slices[1][:, ::-1])
    assert np.array_equal(im[64:128, :48], slices[(1 * 4 + 0) % 3][::-1])


def test_timed_frame_is_the_runtime_pipeline(tiny_onnx: Path, isbi: Path, tmp_path: Path) -> None:
    path = isbi / "train" / "image" / "20.png"
    info = metadata.read(tiny_onnx)
    with Segmenter(tiny_onnx, tile=380) as seg:
        plan = seg.plan_for((512, 512))
        probs, stages = bench.timed_frame(path, info, plan, seg.run_batch, 3, tmp_path / "m.png")
        expected = seg.predict(io.read_image(path))
        x = processing.normalize(io.read_image(path), info.normalization, 1)
        tiled = tiling.run_tiled(x, plan, seg.run_batch, 2, 1)
    assert np.array_equal(probs, expected) and np.array_equal(probs, tiled)
    assert set(stages) == set(bench.STAGES) and all(v >= 0 for v in stages.values())
    mask = io.read_image(tmp_path / "m.png")
    assert np.array_equal(mask, processing.mask_to_image(processing.to_mask(expected), 2))


def test_gemm_peak_reports_both_environments() -> None:
    peak = bench.gemm_peak(256)
    assert set(peak["runs"]) == {"env", "openblas_vars_unset"}
    assert peak["peak_gflops"] == max(r["gflops"] for r in peak["runs"].values())
    assert peak["peak_from"] in peak["runs"]


def test_quick_bench_cli_writes_json_markdown_png(
    tiny_onnx: Path, isbi: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    backends = "torch,ort-fp32,ort-int8,cuda-fp32"
    args = ["bench", "--quick", "-m", str(tiny_onnx), "--data", str(isbi / "train"), "-o", str(out),
            "--backends", backends]  # fmt: skip
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    result = json.loads((out / "bench.json").read_text())
    assert (out / "bench.md").read_text().startswith("# unet-edge benchmark")
    png = (out / "bench.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    measured = {row["backend"] for row in result["rows"]}
    for name in backends.split(","):
        assert (name in measured) != (name in result["skipped"]), name
    assert {"torch", "ort-fp32"} <= measured
    fp32 = next(row for row in result["rows"] if row["backend"] == "ort-fp32")
    assert fp32["size"] == 512 and fp32["vs_fp32"]["max_abs_prob_diff"] == 0.0
    assert set(fp32["stages_s"]) == set(bench.STAGES)
    info = metadata.read(tiny_onnx)
    flops = cost.conv_flops(info.architecture, fp32["tile"], fp32["tile"]) * fp32["tiles"]
    assert fp32["gflop"] == pytest.approx(flops / 1e9)
    assert fp32["gflops"] == pytest.approx(flops / fp32["stages_s"]["infer"] / 1e9)
    torch_row = next(row for row in result["rows"] if row["backend"] == "torch")
    assert torch_row["vs_fp32"]["max_abs_prob_diff"] < 1e-4  # same weights, same tiles
    assert result["peak"]["peak_gflops"] > 0
    assert len(result["targets"]) == 5
    assert result["sweeps"]["tile"] and result["sweeps"]["batch"]
    fid = result["fidelity_summary"]
    assert fid["ort-fp32"]["class_diff_share"] == 0.0 and "rand_error_change" in fid["torch"]


@pytest.mark.parametrize("shape", [(2, 7, 5), (3, 40, 33), (5, 1, 1), (1, 3, 3), (4, 2, 8, 9)])
def test_fast_to_mask_equals_argmax(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    ax = len(shape) - 3
    for p in (rng.random(shape), rng.integers(0, 3, shape)):  # the second is full of ties
        p = p.astype(np.float32)
        got = processing.to_mask(p)
        assert got.dtype == np.uint8
        assert np.array_equal(got, np.argmax(p, axis=ax).astype(np.uint8))
