"""The benchmark: FLOP count, the instrumented kernel, a quick run on a tiny setup, optional
packages left out with a reason, this project's targets on a saved result, atomic outputs."""

from __future__ import annotations

import importlib.util
import inspect
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from bench_fixtures import load_benchmark, make_tiny_data
from click.testing import CliRunner

from unet_edge import bench, cost, metadata
from unet_edge.cli import main
from unet_edge.config import UNetConfig
from unet_edge.geometry import Geometry

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
CONFIGS = [
    UNetConfig(),
    UNetConfig(base_width=16),
    UNetConfig(in_channels=3, classes=3, depth=2, base_width=2),
    UNetConfig(base_width=2, depth=3, padding="same", batch_norm=True),
    UNetConfig(base_width=4, depth=2, convs_per_level=3, kernel_size=5),
]
#: Seconds, not minutes: one 256x256 mosaic, a 2-tile sweep, a tiny SGEMM.
TINY = ["--quick", "--sizes", "256"]


def _tiny_kw(**kw: Any) -> dict[str, Any]:
    base = dict(sizes=(256,), sweep_size=256, tile_sweep=(220,), batch_sweep=(1,), gemm_n=128)
    return {**base, **kw}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three crops of the packaged sample in image/, thresholded as labels in label/."""
    return make_tiny_data(tmp_path_factory.mktemp("bench_data"))


@pytest.fixture(scope="module")
def quick_run(tiny_onnx: Path, tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``unet-edge bench`` once on the tiny setup (every backend asked for); the output folder."""
    out = tmp_path_factory.mktemp("bench") / "results"
    args = ["bench", *TINY, "-m", str(tiny_onnx), "--data", str(tiny_data), "-o", str(out),
            "--backends", "torch,ort-fp32,ort-int8,cuda-fp32"]  # fmt: skip
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    return out


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
    mods = "unet_edge.bench, unet_edge.cli.bench, unet_edge.cost, unet_edge.precision"
    code = f"import sys, {mods}; print('torch' in sys.modules, 'matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def test_no_project_data_or_targets_in_the_package() -> None:
    import importlib
    import pkgutil

    from unet_edge.cli import bench as cli_bench

    parts = [
        importlib.import_module(f"unet_edge.bench.{m.name}")
        for m in pkgutil.iter_modules(bench.__path__)
    ]
    for module in (bench, *parts, cli_bench):
        source = inspect.getsource(module)
        assert "shared" not in source and "_targets" not in source, module.__name__
    assert bench.find_data(None).images == {"sample_isbi2012": bench.sample_path()}


def test_quick_run_checks_every_timed_output(quick_run: Path, tiny_onnx: Path) -> None:
    result = json.loads((quick_run / "bench.json").read_text())
    assert (quick_run / "bench.md").read_text().startswith("# unet-edge benchmark")
    if "plot" in result["left_out"]:  # a runtime-only install: no matplotlib
        assert not (quick_run / "bench.png").exists()
    else:
        png = (quick_run / "bench.png").read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 5000
    assert not [p for p in quick_run.iterdir() if p.name.startswith(".")]  # no temporaries
    measured = {row["backend"] for row in result["rows"]}
    for name in ("torch", "ort-fp32", "ort-int8", "cuda-fp32"):
        assert (name in measured) != (name in result["skipped"]), name
    assert ("torch" in measured) == ("torch" not in result["left_out"])
    assert "ort-fp32" in measured and result["reference"] == "ort-fp32"
    assert "targets" not in result and result["data"]["fidelity"] == ["s2"]
    fp32 = next(row for row in result["rows"] if row["backend"] == "ort-fp32")
    assert fp32["size"] == 256 and fp32["check"]["max_abs_prob_diff"] == 0.0
    assert set(fp32["stages_s"]) == set(bench.STAGES)
    info = metadata.read(tiny_onnx)
    flops = cost.conv_flops(info.architecture, fp32["tile"], fp32["tile"]) * fp32["tiles"]
    assert fp32["gflop"] == pytest.approx(flops / 1e9)
    assert fp32["gflops"] == pytest.approx(flops / fp32["stages_s"]["infer"] / 1e9)
    sweeps = result["sweeps"]["tile"] + result["sweeps"]["batch"]
    assert len(sweeps) >= 3
    for row in result["rows"] + sweeps:  # a figure is only as good as its output
        assert 0.0 <= row["check"]["label_agreement"] <= 1.0
        # torch: the same weights on the same tiles; sweeps: tiled == whole image, any tile
        assert row["check"]["max_abs_prob_diff"] < 1e-4 or row["backend"] == "ort-int8"
    fid = result["fidelity_summary"]
    assert fid["ort-fp32"]["class_diff_share"] == 0.0
    assert set(fid) == measured and all("label_agreement" in f for f in fid.values())
    if "rand_error" not in result["left_out"]:
        assert all(f["rand_error_change"] == pytest.approx(0.0, abs=1e-6) for f in fid.values()
                   if f["class_diff_share"] == 0.0)  # fmt: skip


@pytest.mark.parametrize("hidden", [("matplotlib", "torch"), ("psutil", "skimage")])
def test_missing_optional_packages_are_one_line_reasons(
    hidden: tuple[str, ...],
    tiny_onnx: Path,
    tiny_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in hidden:
        monkeypatch.setitem(sys.modules, name, None)  # `import name` now raises ImportError
    out = tmp_path / "results"
    out.mkdir()
    (out / "bench.png").write_bytes(b"an earlier run's plot")
    args = ["bench", *TINY, "-v", "-m", str(tiny_onnx), "--data", str(tiny_data), "-o", str(out),
            "--backends", "torch,ort-fp32"]  # fmt: skip
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "Traceback" not in r.output
    result = json.loads((out / "bench.json").read_text())
    first_measurement = r.output.index("measuring the fp32 peak")
    keys = {"matplotlib": "plot", "torch": "torch", "psutil": "memory", "skimage": "rand_error"}
    for name in hidden:
        why = result["left_out"][keys[name]]
        assert "\n" not in why and f"{name} is not installed" in why
        assert r.output.index(f"Skipping: {why}") < first_measurement  # said before measuring
    md = (out / "bench.md").read_text()
    if "matplotlib" in hidden:
        assert not (out / "bench.png").exists()  # no stale plot beside new figures
        assert "torch" not in {row["backend"] for row in result["rows"]}
        assert "pip install 'unet-edge[train]'" in result["skipped"]["torch"]
    else:
        assert all(row["peak_rss_mib"] is None for row in result["rows"])
        assert "rand_error" not in result["fidelity_summary"]["ort-fp32"]
    assert "Not measured" in md


def test_targets_on_a_saved_result(quick_run: Path) -> None:
    targets = load_benchmark("targets")
    result = json.loads((quick_run / "bench.json").read_text())
    checked = targets.apply(quick_run)
    again = targets.apply(quick_run)  # a re-check replaces the section
    assert checked == again and len(checked) == len(targets.TARGETS) == 5
    md = (quick_run / "bench.md").read_text()
    assert md.count(targets.MARKER) == 1 and md.startswith("# unet-edge benchmark")
    saved = json.loads((quick_run / "bench.json").read_text())
    assert saved["targets"] == checked and saved["rows"] == result["rows"]
    by = {t["target"]: t for t in checked}
    fp32 = next(r for r in result["rows"] if r["backend"] == "ort-fp32")
    speed = by["ORT fp32 end-to-end speedup over PyTorch eager (same tiles)"]
    assert speed["value"] == fp32["speedup_vs_torch"]
    assert speed["met"] == (None if speed["value"] is None else speed["value"] >= 1.5)
    assert speed["class_diff_share"] == fp32["check"]["class_diff_share"]
    nonmodel = by["non-model stages share of wall time (ORT fp32)"]
    assert nonmodel["met"] == (fp32["non_model_share"] <= 0.05)
    # A target whose row is missing is "not measured", never met.
    bare = targets.check({"rows": [fp32], "fidelity_summary": {}})
    assert [t["met"] for t in bare][3:] == [None, None]


def test_run_script_adds_project_defaults() -> None:
    run = load_benchmark("run")
    args = run.bench_args(["--quick"])
    assert args[:3] == ["bench", "-o", str(run.RESULTS)] and args[-1] == "--quick"
    if (run.ISBI / "image").is_dir():
        assert args[args.index("--fidelity") + 1] == "20-24"
    assert "--calibration" not in run.bench_args(["--data=/x"])


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None,
    reason="openvino is not installed (pip install 'unet-edge[openvino]')",
)
def test_openvino_rows_are_checked_like_the_others(
    tiny_onnx: Path, tiny_data: Path, tmp_path: Path
) -> None:
    backends = ("ort-fp32", "openvino-fp32", "openvino-bf16", "openvino-int8")
    kw = _tiny_kw(backends=backends, int8_threshold=0.5, tile_sweep=(), batch_sweep=())
    cfg = bench.BenchConfig.quick_config(tiny_onnx, tiny_data, tmp_path, **kw)
    result = bench.run(cfg)
    rows = {r["backend"]: r for r in result["rows"]}
    assert rows["openvino-fp32"]["check"]["max_abs_prob_diff"] < 1e-4
    assert rows["openvino-fp32"]["check"]["class_diff_share"] == 0.0
    assert "openvino-int8" in rows and result["int8"]["openvino-int8"]["provider"] == "openvino"
    assert ("openvino-bf16" in rows) != ("bf16" in result["skipped"].get("openvino-bf16", ""))
    for r in rows.values():
        assert r["speedup_vs_fp32"] > 0 and r["peak_share"] > 0
        assert (r["ceiling_share"] is None) == ("gflops" not in result["ceiling"])
    md = (tmp_path / "bench.md").read_text()
    assert "| openvino-fp32 |" in md and "% FMA" in md and "FMA ceiling" in md
