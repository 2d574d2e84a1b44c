"""The benchmark behind ``unet-edge bench``: speed and fidelity of every backend, side by side.

One model, one set of images, one tiling per image size; only the backend
changes. Backends:

- ``torch``: PyTorch eager on the CPU with the model's own weights, fed the
  same tiles (the baseline; needs the ``[train]`` extra, imported only here);
- ``ort-fp32``: ONNX Runtime, CPU provider, the fp32 graph;
- ``ort-int8``: the same, static int8 QDQ graph from :func:`unet_edge.precision.quantize`
  calibrated on other ISBI slices than those used for fidelity;
- ``cuda-fp32``, ``tensorrt-fp32``, ``tensorrt-fp16``: where the provider
  really works here (otherwise a row says why not);
- ``openvino``: OpenVINO on the CPU (fp32 hint) when the package is installed.

Each frame goes through the real pipeline, timed per stage: ``read``
(PNG from disk), ``normalise``, ``tile`` (mirror-pad and cut), ``infer``,
``stitch`` and ``write`` (mask to PNG). Before a configuration is timed,
one untimed frame warms up every batch shape it sends, unless the same
backend ran those shapes before; medians and percentiles are over the
timed repeats.

Images of 512x512 up to 4096x4096 are made from real ISBI 2012 slices laid
side by side, every other one mirrored so that edges meet.

The achieved GFLOP/s of the model is ``cost.conv_flops`` per tile times tiles
over the inference time; the machine's fp32 peak is a 4096 SGEMM measured
in the same run by numpy in a subprocess, once with the environment as it
is and once with ``OPENBLAS_CORETYPE``/``OPENBLAS_L2_SIZE`` unset (only in
that subprocess); the higher is the peak quoted, and which one it was is
recorded.

Nothing here prints; :func:`run` returns the results and writes
``bench.json``, ``bench.md`` and ``bench.png``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import cost, io, metadata, processing, tiling
from .errors import ConfigError, DataError, ExportError, UnetEdgeError

__all__ = ["BenchConfig", "gemm_peak", "run", "synth_image", "timed_frame"]

STAGES = ("read", "normalise", "tile", "infer", "stitch", "write")
ALL_BACKENDS = (
    "torch",
    "ort-fp32",
    "ort-int8",
    "cuda-fp32",
    "tensorrt-fp32",
    "tensorrt-fp16",
    "openvino",
)
Predictor = Callable[[np.ndarray], np.ndarray]


@dataclass
class BenchConfig:
    """What to measure. The defaults are the full run (a few minutes on 2 cores)."""

    model: Path
    data: Path  # ISBI 2012 train folder (image/, label/)
    out_dir: Path
    sizes: tuple[int, ...] = (512, 1024, 2048, 4096)
    backends: tuple[str, ...] = ALL_BACKENDS
    tile: int | None = None  # None: the runtime's own choice per size
    batch_size: int = 1
    sweep_size: int = 2048
    tile_sweep: tuple[int, ...] = (380, 572, 764, 1148, 1340)
    batch_sweep: tuple[int, ...] = (1, 2, 4)
    min_repeats: int = 3
    max_repeats: int = 20
    min_seconds: float = 3.0
    threads: int | None = None
    int8_model: Path | None = None
    int8_threshold: float | None = None  # None: precision.AGREEMENT_THRESHOLD
    # Ten slices: with five (00-04) the shipped model's int8 copy agreed with fp32 on
    # 99.496% of calibration pixels, just under the 99.5% gate; with ten, 99.56%.
    calibration: tuple[str, ...] = tuple(f"{i:02d}" for i in range(10))
    fidelity: tuple[str, ...] = ("20", "21", "22", "23", "24")
    gemm_n: int = 4096
    quick: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.min_repeats <= self.max_repeats:
            raise ConfigError(
                f"need 1 <= min_repeats <= max_repeats, got {self.min_repeats}, {self.max_repeats}"
            )
        if self.batch_size < 1 or not self.sizes:
            raise ConfigError("batch_size must be >= 1 and sizes must not be empty")

    @classmethod
    def quick_config(cls, model: Path, data: Path, out_dir: Path, **kw: Any) -> BenchConfig:
        """Seconds, not minutes: one small size, one repeat, small sweeps (for tests)."""
        base: dict[str, Any] = dict(
            sizes=(512,),
            sweep_size=512,
            tile_sweep=(380, 572),
            batch_sweep=(1, 2),
            min_repeats=1,
            max_repeats=1,
            min_seconds=0.0,
            calibration=("00",),
            fidelity=("20",),
            gemm_n=1024,
            quick=True,
        )
        base.update(kw)
        return cls(model=model, data=data, out_dir=out_dir, **base)


# ---------------------------------------------------------------------------
# Images


def _slices(data: Path, names: Sequence[str] | None = None) -> list[tuple[str, Path]]:
    folder = data / "image"
    files = sorted(folder.glob("*.png")) if folder.is_dir() else []
    if not files:
        raise DataError(f"no ISBI 2012 slices in {folder}; pass --data with image/ and label/")
    if names is None:
        return [(f.stem, f) for f in files]
    by = {f.stem: f for f in files}
    missing = [n for n in names if n not in by]
    if missing:
        raise DataError(f"slices {missing} not found in {folder}")
    return [(n, by[n]) for n in names]


def synth_image(slices: Sequence[np.ndarray], size: int) -> np.ndarray:
    """A (size, size) image made of real slices side by side, mirrored so that edges meet.

    Block (i, j) is slice ``(i * cols + j) % len(slices)``, flipped left-right
    when ``j`` is odd and upside-down when ``i`` is odd, then cropped to size.
    """
    h, w = slices[0].shape[:2]
    rows, cols = -(-size // h), -(-size // w)
    out = np.empty((rows * h, cols * w), dtype=slices[0].dtype)
    for i in range(rows):
        for j in range(cols):
            s = slices[(i * cols + j) % len(slices)]
            s = s[::-1] if i % 2 else s
            s = s[:, ::-1] if j % 2 else s
            out[i * h : (i + 1) * h, j * w : (j + 1) * w] = s
    return np.ascontiguousarray(out[:size, :size])


# ---------------------------------------------------------------------------
# One frame through the pipeline, timed per stage


def timed_frame(
    path: Path,
    info: metadata.ModelInfo,
    plan: tiling.TilePlan,
    predictor: Predictor,
    batch_size: int,
    out_path: Path,
) -> tuple[np.ndarray, dict[str, float]]:
    """Read, normalise, tile, infer, stitch and write one frame; (probabilities, seconds per stage).

    The same steps as :func:`unet_edge.tiling.run_tiled` plus the file I/O of
    ``unet-edge run``, with a clock around each.
    """
    t: dict[str, float] = dict.fromkeys(STAGES, 0.0)
    c = time.perf_counter
    t0 = c()
    image = io.read_image(path)
    t1 = c()
    x = processing.normalize(image, info.normalization, info.channels)
    t2 = c()
    padded = tiling.pad(x, plan)
    dest = np.empty((info.classes, plan.height, plan.width), dtype=np.float32)
    n = min(batch_size, plan.n_tiles)
    buf = np.empty((n, info.channels, *plan.tile_shape), dtype=np.float32)
    t["read"], t["normalise"], t["tile"] = t1 - t0, t2 - t1, c() - t2
    for group in tiling.batches(plan, batch_size):
        a = c()
        batch = tiling.extract(padded, plan, group, buf)
        b = c()
        out = predictor(batch)
        d = c()
        tiling.stitch(dest, out, plan, group)
        e = c()
        t["tile"] += b - a
        t["infer"] += d - b
        t["stitch"] += e - d
    a = c()
    mask = processing.to_mask(dest)
    io.write_png(out_path, processing.mask_to_image(mask, info.classes))
    t["write"] = c() - a
    return dest, t


class _PeakRSS:
    """Samples the process's resident memory in a thread; ``peak`` in bytes."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.peak = 0
        self.start = 0
        self._stop = threading.Event()
        self._proc: Any = None

    def _rss(self) -> int:
        return int(self._proc.memory_info().rss) if self._proc is not None else 0

    def __enter__(self) -> _PeakRSS:
        try:
            import psutil

            self._proc = psutil.Process()
        except ImportError:  # psutil is a dev dependency; without it no memory figures
            self._proc = None
        self.start = self.peak = self._rss()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())


# ---------------------------------------------------------------------------
# Backends


@dataclass
class _Backend:
    name: str
    predictor: Predictor | None = None
    skipped: str | None = None
    notes: list[str] = field(default_factory=list)
    close: Callable[[], None] = lambda: None
    warmed: set[tuple[int, ...]] = field(default_factory=set)  # batch shapes run before


def _ort_backend(name: str, model: Path, provider: str, cfg: BenchConfig, **opts: Any) -> _Backend:
    from .providers import ProviderOptions
    from .runtime import Segmenter

    try:
        seg = Segmenter(
            model,
            provider,
            batch_size=cfg.batch_size,
            options=ProviderOptions(threads=cfg.threads, **opts),
        )
    except UnetEdgeError as e:
        return _Backend(name, skipped=str(e))
    return _Backend(name, seg.run_batch, notes=list(seg.notes), close=seg.close)


def _torch_backend(model: Path, cfg: BenchConfig) -> _Backend:
    try:
        from .training.baseline import predictor
    except ImportError as e:
        return _Backend(
            "torch", skipped=f"torch is not installed ({e.name}); pip install 'unet-edge[train]'"
        )
    import torch

    return _Backend(
        "torch",
        predictor(model, cfg.threads),
        notes=[f"torch {torch.__version__}, {torch.get_num_threads()} threads"],
    )


def _openvino_backend(model: Path, cfg: BenchConfig) -> _Backend:
    try:
        import openvino as ov  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return _Backend("openvino", skipped="openvino is not installed (optional peer)")
    core = ov.Core()
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32"}
    if cfg.threads:
        config["INFERENCE_NUM_THREADS"] = cfg.threads
    net = core.read_model(str(model))
    compiled: dict[tuple[int, ...], Any] = {}

    def run(batch: np.ndarray) -> np.ndarray:
        key = batch.shape
        if key not in compiled:  # one static compile per tile shape, as the tiler sends them
            m = net.clone()
            m.reshape({m.inputs[0].any_name: list(key)})
            compiled[key] = core.compile_model(m, "CPU", config)
        return np.asarray(compiled[key](batch)[0])

    return _Backend("openvino", run, notes=[f"openvino {ov.__version__}, f32 hint"])


def _int8_model(cfg: BenchConfig, work: Path) -> tuple[Path | None, str | None, dict[str, Any]]:
    """The int8 model: given, or quantised now on the calibration slices."""
    if cfg.int8_model is not None:
        return cfg.int8_model, None, {}
    from . import precision

    out = work / "model.int8.onnx"
    paths = [p for _, p in _slices(cfg.data, cfg.calibration)]
    threshold = precision.AGREEMENT_THRESHOLD if cfg.int8_threshold is None else cfg.int8_threshold
    try:
        rep = precision.quantize(cfg.model, paths, out, threshold=threshold, overwrite=True)
    except ExportError as e:
        return None, str(e), {}
    info = {k: v for k, v in rep.agreement.items() if k != "per_image"}
    return out, None, {"calibration": list(cfg.calibration), "seconds": rep.seconds, **info}


def _open_backends(cfg: BenchConfig, work: Path, extra: dict[str, Any]) -> list[_Backend]:
    from . import providers

    out: list[_Backend] = []
    for name in cfg.backends:
        if name not in ALL_BACKENDS:
            raise ConfigError(f"unknown backend {name!r}; choose from {', '.join(ALL_BACKENDS)}")
        if name == "torch":
            out.append(_torch_backend(cfg.model, cfg))
        elif name == "ort-fp32":
            out.append(_ort_backend(name, cfg.model, "cpu", cfg))
        elif name == "ort-int8":
            path, why, stats = _int8_model(cfg, work)
            extra["int8"] = stats or {"refused": why}
            out.append(
                _ort_backend(name, path, "cpu", cfg) if path else _Backend(name, skipped=why)
            )
        elif name == "openvino":
            out.append(_openvino_backend(cfg.model, cfg))
        else:
            prov = name.split("-")[0]
            why = (
                providers.probe(prov)
                if prov in [p.value for p in providers.installed()]
                else (f"{prov} is not compiled into this onnxruntime build")
            )
            if why is not None:
                out.append(_Backend(name, skipped=why))
            else:
                fp16 = name.endswith("fp16")
                out.append(_ort_backend(name, cfg.model, prov, cfg, trt_fp16=fp16))
    return out


# ---------------------------------------------------------------------------
# The machine's peak


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
    """fp32 SGEMM GFLOP/s of numpy in subprocesses: environment as is, and OpenBLAS vars unset."""
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


# ---------------------------------------------------------------------------
# Measuring


def _measure(
    backend: _Backend,
    path: Path,
    info: metadata.ModelInfo,
    plan: tiling.TilePlan,
    cfg: BenchConfig,
    batch: int,
    out_path: Path,
) -> tuple[np.ndarray, dict[str, Any]]:
    assert backend.predictor is not None
    walls: list[float] = []
    stages: list[dict[str, float]] = []
    # Warm up every batch shape this plan sends (full batches and the last, smaller one)
    # unless an earlier configuration ran it already. The memory figure spans the
    # warm-up: onnxruntime's arena keeps what it once took, so the increase is what this
    # configuration needed beyond the earlier ones.
    shapes = {(min(batch, plan.n_tiles), *plan.tile_shape)}
    if plan.n_tiles % batch:
        shapes.add((plan.n_tiles % batch, *plan.tile_shape))
    with _PeakRSS() as mem:
        if not shapes <= backend.warmed:
            timed_frame(path, info, plan, backend.predictor, batch, out_path)
            backend.warmed |= shapes
        t_start = time.perf_counter()
        while len(walls) < cfg.max_repeats and (
            len(walls) < cfg.min_repeats or time.perf_counter() - t_start < cfg.min_seconds
        ):
            a = time.perf_counter()
            probs, st = timed_frame(path, info, plan, backend.predictor, batch, out_path)
            walls.append(time.perf_counter() - a)
            stages.append(st)
    med = {s: statistics.median(x[s] for x in stages) for s in STAGES}
    wall = statistics.median(walls)
    flops = cost.conv_flops(info.architecture, *plan.tile_shape) * plan.n_tiles
    px = plan.height * plan.width
    row = {
        "backend": backend.name,
        "size": plan.height,
        "tile": plan.tile_shape[0],
        "batch": batch,
        "tiles": plan.n_tiles,
        "repeats": len(walls),
        "wall_s": wall,
        "p50_s": float(np.percentile(walls, 50)),
        "p99_s": float(np.percentile(walls, 99)),
        "stages_s": med,
        "mpx_per_s": px / wall / 1e6,
        "non_model_share": 1.0 - med["infer"] / sum(med.values()),
        "gflop": flops / 1e9,
        "gflops": flops / med["infer"] / 1e9,
        "peak_rss_mib": mem.peak / 2**20,
        "peak_rss_increase_mib": (mem.peak - mem.start) / 2**20,
        "activation_estimate_mib": cost.activation_bytes(
            info.architecture, *plan.tile_shape, batch=batch
        )
        / 2**20,
    }
    return probs, row


def _default_tile(
    info: metadata.ModelInfo, shape: tuple[int, ...], cfg: BenchConfig
) -> tuple[int, int]:
    """The tile a default :class:`~unet_edge.runtime.Segmenter` picks for this image size."""
    from .runtime import DEFAULT_MAX_TILE, DEFAULT_MEMORY_BUDGET

    return tiling.choose_tile(
        (int(shape[0]), int(shape[1])),
        info.geometry,
        DEFAULT_MAX_TILE,
        tile_bytes=functools.partial(
            cost.activation_bytes, info.architecture, batch=cfg.batch_size
        ),
        memory_budget=DEFAULT_MEMORY_BUDGET,
    )


def _diff(ref: np.ndarray, got: np.ndarray) -> dict[str, float]:
    return {
        "max_abs_prob_diff": float(np.max(np.abs(ref - got))),
        "class_diff_share": float(np.mean(processing.to_mask(ref) != processing.to_mask(got))),
    }


def _fidelity(
    backends: Sequence[_Backend], cfg: BenchConfig, info: metadata.ModelInfo
) -> list[dict[str, Any]]:
    """Each backend vs ort-fp32 on the fidelity slices, with the adapted Rand error change."""
    from .evaluate import read_label

    try:
        from skimage.metrics import adapted_rand_error
    except ImportError:  # the [eval] extra
        adapted_rand_error = None  # type: ignore[assignment]
    from .evaluate import foreground_components

    ref = next((b for b in backends if b.name == "ort-fp32" and b.predictor), None)
    if ref is None:
        return []
    rows = []
    for name, path in _slices(cfg.data, cfg.fidelity):
        image = io.read_image(path)
        truth_path = cfg.data / "label" / path.name
        truth = read_label(truth_path) if truth_path.is_file() else None
        x = processing.normalize(image, info.normalization, info.channels)
        p = tiling.plan(x.shape[1:], info.geometry, _default_tile(info, x.shape[1:], cfg))
        assert ref.predictor is not None
        base = tiling.run_tiled(x, p, ref.predictor, info.classes, cfg.batch_size)
        base_are = None
        if truth is not None and adapted_rand_error is not None:
            tc = foreground_components(truth)
            base_are = adapted_rand_error(
                tc, foreground_components(processing.to_mask(base)), ignore_labels=(0,)
            )[0]
        for b in backends:
            if b.predictor is None:
                continue
            got = tiling.run_tiled(x, p, b.predictor, info.classes, cfg.batch_size)
            row: dict[str, Any] = {"backend": b.name, "slice": name, **_diff(base, got)}
            if base_are is not None and adapted_rand_error is not None:
                are = adapted_rand_error(
                    tc, foreground_components(processing.to_mask(got)), ignore_labels=(0,)
                )[0]
                row["rand_error"] = float(are)
                row["rand_error_change"] = float(are - base_are)
            rows.append(row)
    return rows


def _summarise_fidelity(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name in dict.fromkeys(r["backend"] for r in rows):
        rs = [r for r in rows if r["backend"] == name]
        out[name] = {
            "max_abs_prob_diff": max(r["max_abs_prob_diff"] for r in rs),
            "class_diff_share": float(np.mean([r["class_diff_share"] for r in rs])),
        }
        if all("rand_error_change" in r for r in rs):
            out[name]["rand_error"] = float(np.mean([r["rand_error"] for r in rs]))
            out[name]["rand_error_change"] = float(np.mean([r["rand_error_change"] for r in rs]))
    return out


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="unet-edge-bench-") as d:
        yield Path(d)


def run(cfg: BenchConfig, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the benchmark; writes ``bench.json``, ``bench.md`` and ``bench.png`` to ``out_dir``."""
    say = progress or (lambda _msg: None)
    info = metadata.read(cfg.model)
    g = info.geometry
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    result: dict[str, Any] = {"config": _jsonable(asdict(cfg)), "machine": _machine()}
    result["model"] = {
        "path": str(cfg.model),
        "name": info.name,
        "precision": info.precision.value,
        "architecture": info.architecture.to_dict(),
    }
    say(f"measuring the fp32 peak (numpy SGEMM {cfg.gemm_n})")
    result["peak"] = gemm_peak(cfg.gemm_n, cfg.threads)
    peak = result["peak"]["peak_gflops"]
    slices = [io.read_image(p) for _, p in _slices(cfg.data)]
    extra: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    with _workdir() as work:
        say("opening backends" + (" (quantising int8)" if "ort-int8" in cfg.backends else ""))
        backends = _open_backends(cfg, work, extra)
        result["skipped"] = {b.name: b.skipped for b in backends if b.skipped}
        result["notes"] = {b.name: b.notes for b in backends if b.notes}
        result["int8"] = extra.get("int8")
        # ort-fp32 first: it is the reference every other backend is compared with.
        live = sorted(
            (b for b in backends if b.predictor is not None), key=lambda b: b.name != "ort-fp32"
        )
        for size in cfg.sizes:
            img = work / f"synth_{size}.png"
            io.write_png(img, synth_image(slices, size))
            tile = cfg.tile or _default_tile(info, (size, size), cfg)
            plan = tiling.plan((size, size), g, tile)
            ref = None
            for b in live:
                say(f"{b.name} {size}x{size} tile {plan.tile_shape[0]} batch {cfg.batch_size}")
                probs, row = _measure(b, img, info, plan, cfg, cfg.batch_size, work / "mask.png")
                if b.name == "ort-fp32":
                    ref = probs
                row["vs_fp32"] = _diff(ref, probs) if ref is not None else None
                rows.append(row)
                del probs
            del ref
        result["rows"] = rows
        result["sweeps"] = _sweeps(cfg, live, info, slices, work, say)
        say("fidelity on ISBI slices " + ", ".join(cfg.fidelity))
        fid = _fidelity(live, cfg, info)
        result["fidelity"] = fid
        result["fidelity_summary"] = _summarise_fidelity(fid)
        for b in backends:
            b.close()
    _add_ratios(rows, peak)
    result["targets"] = _targets(result)
    result["seconds"] = time.perf_counter() - t_all
    from .io import atomic_path

    with atomic_path(cfg.out_dir / "bench.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2, sort_keys=True))
    with atomic_path(cfg.out_dir / "bench.md") as tmp:
        tmp.write_text(markdown(result))
    with atomic_path(cfg.out_dir / "bench.png") as tmp:
        plot(result, tmp)
    return result


def _sweeps(
    cfg: BenchConfig,
    live: Sequence[_Backend],
    info: metadata.ModelInfo,
    slices: Sequence[np.ndarray],
    work: Path,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Tile and batch sweeps with ort-fp32 at ``sweep_size``."""
    b = next((x for x in live if x.name == "ort-fp32"), None)
    if b is None:
        return {}
    g = info.geometry
    img = work / "sweep.png"
    io.write_png(img, synth_image(slices, cfg.sweep_size))
    out: dict[str, Any] = {"size": cfg.sweep_size, "tile": [], "batch": []}
    tiles = [t for t in cfg.tile_sweep if g.is_legal(t)]
    tiles.append(g.input_for_output(cfg.sweep_size))  # the whole image in one tile
    for t in sorted(set(tiles)):  # ascending, so each memory increase belongs to its tile
        plan = tiling.plan((cfg.sweep_size,) * 2, g, t)
        say(f"tile sweep {cfg.sweep_size}x{cfg.sweep_size} tile {plan.tile_shape[0]}")
        out["tile"].append(
            {"sweep": "tile", **_measure(b, img, info, plan, cfg, 1, work / "m.png")[1]}
        )
    sweep_tile = cfg.tile or _default_tile(info, (cfg.sweep_size,) * 2, cfg)
    plan = tiling.plan((cfg.sweep_size,) * 2, g, sweep_tile)
    for n in cfg.batch_sweep:
        say(f"batch sweep {cfg.sweep_size}x{cfg.sweep_size} tile {plan.tile_shape[0]} batch {n}")
        out["batch"].append(
            {"sweep": "batch", **_measure(b, img, info, plan, cfg, n, work / "m.png")[1]}
        )
    return out


def _add_ratios(rows: list[dict[str, Any]], peak: float | None) -> None:
    torch_wall = {r["size"]: r["wall_s"] for r in rows if r["backend"] == "torch"}
    fp32_wall = {r["size"]: r["wall_s"] for r in rows if r["backend"] == "ort-fp32"}
    for r in rows:
        r["peak_share"] = r["gflops"] / peak if peak else None
        t = torch_wall.get(r["size"])
        r["speedup_vs_torch"] = t / r["wall_s"] if t else None
        f = fp32_wall.get(r["size"])
        r["speedup_vs_fp32"] = f / r["wall_s"] if f else None


def _targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    rows = result["rows"]
    biggest = max((r["size"] for r in rows), default=None)

    def pick(backend: str) -> dict[str, Any] | None:
        return next((r for r in rows if r["backend"] == backend and r["size"] == biggest), None)

    fp32, torch_row, int8 = pick("ort-fp32"), pick("torch"), pick("ort-int8")
    fid = result.get("fidelity_summary", {}).get("ort-int8")
    out = []

    def add(name: str, value: float | None, goal: float, higher: bool, unit: str) -> None:
        met = None if value is None else (value >= goal if higher else value <= goal)
        out.append(
            {
                "target": name,
                "value": value,
                "goal": goal,
                "met": met,
                "unit": unit,
                "size": biggest,
            }
        )

    add(
        "ORT fp32 end-to-end speedup over PyTorch eager (same tiles)",
        fp32["speedup_vs_torch"] if fp32 and torch_row else None,
        1.5,
        True,
        "x",
    )
    add(
        "ORT fp32 model GFLOP/s share of measured fp32 peak",
        fp32["peak_share"] if fp32 else None,
        0.80,
        True,
        "",
    )
    add(
        "non-model stages share of wall time (ORT fp32)",
        fp32["non_model_share"] if fp32 else None,
        0.05,
        False,
        "",
    )
    add(
        "int8 end-to-end speedup over ORT fp32",
        int8["speedup_vs_fp32"] if int8 else None,
        2.0,
        True,
        "x",
    )
    add(
        "int8 pixels unchanged vs fp32 on the fidelity slices",
        1.0 - fid["class_diff_share"] if fid else None,
        0.995,
        True,
        "",
    )
    return out


def _machine() -> dict[str, Any]:
    import onnxruntime as ort

    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnxruntime": ort.__version__,
        "platform": platform.platform(),
    }


def _jsonable(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _jsonable(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_jsonable(v) for v in d]
    if isinstance(d, Path):
        return str(d)
    return d


# ---------------------------------------------------------------------------
# Reports


def _f(v: float | None, fmt: str) -> str:
    return "–" if v is None else format(v, fmt)


def _core(peak: dict[str, Any]) -> str:
    run = peak["runs"].get(peak.get("peak_from") or "", {})
    return str(run.get("openblas_core") or "unknown")


def markdown(result: dict[str, Any]) -> str:
    """The results as Markdown tables."""
    peak = result["peak"]
    rows = result["rows"]
    m = result["model"]
    a = m["architecture"]
    lines = [
        "# unet-edge benchmark",
        "",
        f"Model `{Path(m['path']).name}` ({m['name']}, U-Net depth {a['depth']}, base width "
        f"{a['base_width']}, {m['precision']}); CPU {result['machine']['cpu']}, "
        f"{result['machine']['cores']} cores; onnxruntime {result['machine']['onnxruntime']}. "
        f"fp32 peak: numpy SGEMM {peak['n']} = {_f(peak['peak_gflops'], '.0f')} GFLOP/s "
        f"({peak['peak_from']}; OPENBLAS_CORETYPE in the environment: "
        f"{peak['environment'].get('OPENBLAS_CORETYPE')}; OpenBLAS core "
        f"{_core(peak)}). Each row: n timed frames (median, p99) after every batch shape was "
        "warmed up once; one frame = read PNG, normalise, tile, infer, stitch, write mask PNG. "
        "Images are real ISBI 2012 slices tiled and mirrored; the tile is what a default "
        "Segmenter picks. % peak = model GFLOP/s (conv FLOPs / infer time) over the SGEMM peak.",
        "",
        "| backend | image | tile | tiles | n | wall s (p50) | p99 s | Mpx/s | vs torch "
        "| model GFLOP/s | % peak | non-model % | process peak RSS MiB | max abs Δp | class Δ % |",
        "|---" * 15 + "|",
    ]
    for r in rows:
        d = r.get("vs_fp32") or {}
        cd = d.get("class_diff_share")
        share = r.get("peak_share")
        lines.append(
            f"| {r['backend']} | {r['size']}² | {r['tile']} | {r['tiles']} | {r['repeats']} "
            f"| {r['wall_s']:.3f} "
            f"| {r['p99_s']:.3f} | {r['mpx_per_s']:.2f} | {_f(r.get('speedup_vs_torch'), '.2f')}x "
            f"| {r['gflops']:.0f} | {_f(share and 100 * share, '.0f')} "
            f"| {100 * r['non_model_share']:.1f} | {r['peak_rss_mib']:.0f} "
            f"| {_f(d.get('max_abs_prob_diff'), '.2e')} "
            f"| {_f(None if cd is None else 100 * cd, '.3f')} |"
        )
    biggest = max((r["size"] for r in rows), default=None)
    lines += [
        "",
        f"Stages at {biggest}x{biggest}, seconds (median):",
        "",
        "| backend | " + " | ".join(STAGES) + " |",
        "|---" * (len(STAGES) + 1) + "|",
    ]
    for r in rows:
        if r["size"] == biggest:
            lines.append(
                f"| {r['backend']} | "
                + " | ".join(f"{r['stages_s'][s]:.4f}" for s in STAGES)
                + " |"
            )
    sw = result.get("sweeps") or {}
    if sw:
        lines += [
            "",
            f"Sweeps, ort-fp32, {sw['size']}x{sw['size']}:",
            "",
            "| sweep | tile | batch | tiles | wall s | Mpx/s | model GFLOP/s "
            "| activation estimate MiB | RSS increase MiB |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in sw["tile"] + sw["batch"]:
            lines.append(
                f"| {r['sweep']} | {r['tile']} | {r['batch']} | {r['tiles']} | {r['wall_s']:.3f} "
                f"| {r['mpx_per_s']:.2f} | {r['gflops']:.0f} | {r['activation_estimate_mib']:.0f} "
                f"| {r['peak_rss_increase_mib']:.0f} |"
            )
    fs = result.get("fidelity_summary") or {}
    if fs:
        names = ", ".join(result["config"]["fidelity"])
        lines += [
            "",
            f"Fidelity against ort-fp32 on ISBI slices {names} (512x512):",
            "",
            "| backend | max abs Δp | pixels with another class % | adapted Rand error | change |",
            "| --- | --- | --- | --- | --- |",
        ]
        for name, s in fs.items():
            lines.append(
                f"| {name} | {s['max_abs_prob_diff']:.2e} | {100 * s['class_diff_share']:.3f} "
                f"| {_f(s.get('rand_error'), '.4f')} | {_f(s.get('rand_error_change'), '+.4f')} |"
            )
    if result.get("skipped"):
        lines += ["", "Not measured:", ""]
        lines += [f"- {k}: {v}" for k, v in result["skipped"].items()]
    lines += [
        "",
        f"Targets (at {biggest}x{biggest}):",
        "",
        "| target | measured | goal | met |",
        "| --- | --- | --- | --- |",
    ]
    for t in result["targets"]:
        v = t["value"]
        shown = "–" if v is None else (f"{v:.2f}x" if t["unit"] == "x" else f"{100 * v:.2f}%")
        goal = f"{t['goal']:.1f}x" if t["unit"] == "x" else f"{100 * t['goal']:.1f}%"
        op = ">=" if "share of wall" not in t["target"] else "<="
        met = {True: "yes", False: "no", None: "not measured"}[t["met"]]
        lines.append(f"| {t['target']} | {shown} | {op} {goal} | {met} |")
    lines.append("")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    """Throughput by image size per backend, and the tile sweep, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    ax = axes[0]
    for name in dict.fromkeys(r["backend"] for r in result["rows"]):
        rs = [r for r in result["rows"] if r["backend"] == name]
        ax.plot([r["size"] for r in rs], [r["mpx_per_s"] for r in rs], "o-", label=name)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("image side (px)")
    ax.set_ylabel("output Mpx/s (end to end)")
    ax.set_title("Throughput by backend")
    ax.legend()
    ax.grid(alpha=0.3)
    ax = axes[1]
    sw = result.get("sweeps") or {}
    if sw.get("tile"):
        ts = sw["tile"]
        ax.plot([r["tile"] for r in ts], [r["mpx_per_s"] for r in ts], "o-", label="Mpx/s")
        ax.set_xlabel(f"tile input size (px), {sw['size']}x{sw['size']} image, ort-fp32")
        ax.set_ylabel("output Mpx/s")
        ax.set_title("Tile sweep")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
