"""The benchmark: FLOP count, the instrumented kernel, a quick run on a tiny setup, optional
packages left out with a reason, this project's targets on a saved result, atomic outputs."""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from unet_edge import bench, cost, io, metadata, processing, tiling
from unet_edge.bench import report
from unet_edge.bench.data import choose_images
from unet_edge.cli import main
from unet_edge.config import UNetConfig
from unet_edge.errors import ConfigError, DataError
from unet_edge.geometry import Geometry
from unet_edge.runtime import Segmenter

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
    folder = tmp_path_factory.mktemp("bench_data")
    (folder / "image").mkdir()
    (folder / "label").mkdir()
    sample = io.read_image(bench.sample_path())
    for k, (y, x) in enumerate([(0, 0), (100, 200), (300, 50)]):
        crop = sample[y : y + 160, x : x + 176]
        io.write_png(folder / "image" / f"s{k}.png", crop)
        io.write_png(folder / "label" / f"s{k}.png", np.where(crop > crop.mean(), 255, 0))
    return folder


@pytest.fixture(scope="module")
def quick_run(tiny_onnx: Path, tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``unet-edge bench`` once on the tiny setup (every backend asked for); the output folder."""
    out = tmp_path_factory.mktemp("bench") / "results"
    args = ["bench", *TINY, "-m", str(tiny_onnx), "--data", str(tiny_data), "-o", str(out),
            "--backends", "torch,ort-fp32,ort-int8,cuda-fp32"]  # fmt: skip
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    return out


def _load(name: str) -> ModuleType:
    """A script of benchmarks/ as a module (benchmarks/ is not a package)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS))


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


def test_synth_image_mirrors_real_slices() -> None:
    rng = np.random.default_rng(0)
    slices = [rng.integers(0, 255, (64, 48), dtype=np.uint8) for _ in range(3)]
    im = bench.synth_image(slices, 150)
    assert im.shape == (150, 150) and im.dtype == np.uint8
    assert np.array_equal(im[:64, :48], slices[0])
    assert np.array_equal(im[:64, 48:96], slices[1][:, ::-1])
    assert np.array_equal(im[64:128, :48], slices[(1 * 4 + 0) % 3][::-1])
    rgb = bench.synth_image([rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)], 60)
    assert rgb.shape == (60, 60, 3) and np.array_equal(rgb[:20, 30:60], rgb[:20, :30][:, ::-1])


def test_timed_frame_is_the_runtime_pipeline(tiny_onnx: Path, tmp_path: Path) -> None:
    path = bench.sample_path()
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


def test_data_folder_choice_and_errors(tiny_data: Path, tiny_onnx: Path, tmp_path: Path) -> None:
    data = bench.find_data(tiny_data)
    assert data.names == ("s0", "s1", "s2") and set(data.labels) == set(data.names)
    cfg = bench.BenchConfig.quick_config(tiny_onnx, tiny_data, tmp_path)
    assert choose_images(data, cfg) == (("s0",), ("s2",), [])
    sample = bench.find_data(None)
    cal, fid, notes = choose_images(sample, cfg)
    assert cal == fid == ("sample_isbi2012",) and "no other image" in notes[0]
    (tmp_path / "empty" / "image").mkdir(parents=True)
    with pytest.raises(DataError, match="no images in"):
        bench.find_data(tmp_path / "empty")
    with pytest.raises(DataError, match="not found"):
        choose_images(
            data, bench.BenchConfig.quick_config(tiny_onnx, None, tmp_path, fidelity=("x",))
        )
    with pytest.raises(ConfigError, match="unknown backend"):
        bench.BenchConfig.quick_config(tiny_onnx, None, tmp_path, backends=("ort-fp33",))


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
    targets = _load("targets")
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
    run = _load("run")
    args = run.bench_args(["--quick"])
    assert args[:3] == ["bench", "-o", str(run.RESULTS)] and args[-1] == "--quick"
    if (run.ISBI / "image").is_dir():
        assert args[args.index("--fidelity") + 1] == "20-24"
    assert "--calibration" not in run.bench_args(["--data=/x"])


def test_outputs_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = {"left_out": {}, "rows": []}
    for name in ("bench.json", "bench.md", "bench.png"):
        (tmp_path / name).write_text("old")

    def broken_plot(res: dict[str, Any], path: Path) -> None:
        path.write_bytes(b"\x89PNG half")
        raise RuntimeError("plot failed half-way")

    monkeypatch.setattr(report, "markdown", lambda res: "# new\n")
    monkeypatch.setattr(report, "plot", broken_plot)
    with pytest.raises(RuntimeError):
        bench.write_results(result, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json", "bench.md", "bench.png"]
    assert all((tmp_path / n).read_text() == "old" for n in ("bench.json", "bench.md", "bench.png"))
    monkeypatch.setattr(report, "plot", lambda res, path: path.write_bytes(b"\x89PNG new"))
    written = bench.write_results(result, tmp_path)
    assert [p.name for p in written] == ["bench.png", "bench.md", "bench.json"]
    assert json.loads((tmp_path / "bench.json").read_text()) == result
    assert (tmp_path / "bench.md").read_text() == "# new\n"


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
