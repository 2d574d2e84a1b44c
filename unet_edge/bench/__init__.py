"""The benchmark behind ``unet-edge bench``: speed and fidelity of every backend, side by side.

One model, one set of images, one tiling per image size; only the backend
changes. Backends:

- ``torch``: PyTorch eager on the CPU with the model's own weights, fed the
  same tiles (the baseline; needs the ``[train]`` extra, imported only here);
- ``ort-fp32``: ONNX Runtime, CPU provider, the fp32 graph (the reference);
- ``ort-int8``: the same, static int8 QDQ graph from :func:`unet_edge.precision.quantize`
  calibrated on other images than those used for fidelity where there are any;
- ``cuda-fp32``, ``tensorrt-fp32``, ``tensorrt-fp16``: where the provider
  really works here (otherwise a row says why not);
- ``openvino-fp32``, ``openvino-bf16``, ``openvino-int8``: the ``openvino``
  provider (fp32 arithmetic; bf16 where the CPU has it, else a row says why
  not; the int8 QDQ graph, its agreement gate run on OpenVINO) when the
  package is installed.

The images are the packaged sample (``unet_edge/data/sample_isbi2012.png``)
unless a folder with ``image/`` (and optionally ``label/``) is named. Images
of 512x512 up to 4096x4096 are made of them laid side by side, every other
one mirrored so that edges meet; labels, when every image has one, are laid
out the same way.

Each frame goes through the one kernel (:class:`unet_edge.tiling.TileRun`),
timed per stage: ``read`` (the file), ``normalise``, ``tile`` (mirror-pad and
cut), ``infer``, ``stitch`` and ``write`` (mask to PNG). Before a
configuration is timed, one untimed frame warms up every batch shape it
sends, unless the same backend ran those shapes before; medians and
percentiles are over the timed repeats. A figure is only as good as the
output it was measured on: every timed configuration's probabilities are
compared with the reference backend's (``ort-fp32``) and, where labels
exist, its mask with the labels, and both are reported beside the timing.

The achieved GFLOP/s of the model is ``cost.conv_flops`` per tile times tiles
over the inference time; the machine's fp32 peak is an SGEMM measured in the
same run by numpy in a subprocess, once with the environment as it is and
once with ``OPENBLAS_CORETYPE``/``OPENBLAS_L2_SIZE`` unset (only in that
subprocess); the higher is the peak quoted. Beside it, the fp32 FMA ceiling
(:func:`fma_ceiling`: 12 independent FMA chains per thread in C, AVX-512 or
AVX2, built with the C compiler in the same run; left out without one).

Optional packages (torch, openvino, matplotlib, psutil, scikit-image) are
checked by :func:`preflight` before anything is measured; what is missing is
left out with a one-line reason. No targets live here: a project checks its
own on the saved ``bench.json`` (this repository's are in ``benchmarks/``).

Nothing here prints; :func:`run` returns the results and writes
``bench.json``, ``bench.md`` and ``bench.png``.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .. import cost, cpu, datasets, io, metadata, processing, tiling
from ..errors import ConfigError, DataError, UnetEdgeError

__all__ = [
    "ALL_BACKENDS",
    "STAGES",
    "BenchConfig",
    "BenchData",
    "find_data",
    "fma_ceiling",
    "gemm_peak",
    "markdown",
    "preflight",
    "run",
    "sample_path",
    "synth_image",
    "timed_frame",
]

STAGES = ("read", "normalise", "tile", "infer", "stitch", "write")
ALL_BACKENDS = (
    "torch",
    "ort-fp32",
    "ort-int8",
    "cuda-fp32",
    "tensorrt-fp32",
    "tensorrt-fp16",
    "openvino-fp32",
    "openvino-bf16",
    "openvino-int8",
)
Predictor = Callable[[np.ndarray], np.ndarray]


@dataclass
class BenchConfig:
    """What to measure. The defaults are the full run (minutes on 2 cores)."""

    model: Path
    data: Path | None  # None: the packaged sample; else a folder with image/ [and label/]
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
    calibration: tuple[str, ...] | None = None  # None: the first n_calibration non-fidelity images
    fidelity: tuple[str, ...] | None = None  # None: the last n_fidelity (labelled) images
    n_calibration: int = 10
    n_fidelity: int = 5
    gemm_n: int = 4096
    quick: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.min_repeats <= self.max_repeats:
            raise ConfigError(
                f"need 1 <= min_repeats <= max_repeats, got {self.min_repeats}, {self.max_repeats}"
            )
        if self.batch_size < 1 or not self.sizes or min(self.sizes) < 1:
            raise ConfigError("batch_size must be >= 1 and sizes positive and not empty")
        if self.n_calibration < 1 or self.n_fidelity < 1:
            raise ConfigError("n_calibration and n_fidelity must be >= 1")
        unknown = [b for b in self.backends if b not in ALL_BACKENDS]
        if unknown or not self.backends:
            raise ConfigError(
                f"unknown backend(s) {unknown}; choose from {', '.join(ALL_BACKENDS)}"
            )

    @classmethod
    def quick_config(cls, model: Path, data: Path | None, out_dir: Path, **kw: Any) -> BenchConfig:
        """Seconds, not minutes: one small size, one repeat, small sweeps, one image each."""
        base: dict[str, Any] = dict(
            sizes=(512,),
            sweep_size=512,
            tile_sweep=(380, 572),
            batch_sweep=(1, 2),
            min_repeats=1,
            max_repeats=1,
            min_seconds=0.0,
            n_calibration=1,
            n_fidelity=1,
            gemm_n=1024,
            quick=True,
        )
        base.update(kw)
        return cls(model=model, data=data, out_dir=out_dir, **base)


# ---------------------------------------------------------------------------
# Data


def sample_path() -> Path:
    """The ISBI 2012 slice shipped inside the package (512x512, uint8, no label)."""
    return Path(str(resources.files("unet_edge") / "data" / "sample_isbi2012.png"))


@dataclass(frozen=True)
class BenchData:
    """The benchmark's images by name (file name without extension), and their labels."""

    source: str
    images: Mapping[str, Path]  # sorted by name
    labels: Mapping[str, Path]  # only the labelled images

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.images)


def _listing(folder: Path) -> dict[str, Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in datasets.IMAGE_SUFFIXES)
    return {p.stem: p for p in files}


def _subfolder(data: Path, names: Sequence[str]) -> Path | None:
    return next((data / n for n in names if (data / n).is_dir()), None)


def find_data(data: Path | None) -> BenchData:
    """The packaged sample (``None``), or a folder with ``image/`` and optionally ``label/``.

    Only paths are looked at here (cheap); labels are paired by name.
    """
    if data is not None and not data.is_dir():
        raise DataError(f"data folder {data} does not exist or is not a folder")
    if data is None:
        path = sample_path()
        if not path.is_file():
            raise DataError(f"the packaged sample {path} is missing; pass a data folder")
        return BenchData(f"packaged sample {path.name}", {path.stem: path}, {})
    image_dir = _subfolder(data, datasets.IMAGE_FOLDER_NAMES)
    images = _listing(image_dir) if image_dir else {}
    if not images:
        raise DataError(
            f"no images in {data}/image/; a data folder holds image/ (PNG or TIFF) and "
            "optionally label/ with the same file names"
        )
    label_dir = _subfolder(data, datasets.LABEL_FOLDER_NAMES)
    labels = _listing(label_dir) if label_dir else {}
    return BenchData(str(data), images, {n: p for n, p in labels.items() if n in images})


def _choose(
    data: BenchData, cfg: BenchConfig
) -> tuple[tuple[str, ...], tuple[str, ...], list[str]]:
    """(int8 calibration names, fidelity names, notes about the choice)."""
    for given in (cfg.calibration, cfg.fidelity):
        unknown = [n for n in given or () if n not in data.images]
        if unknown:
            raise DataError(f"images {unknown[:10]} not found in {data.source}")
    pool = [n for n in data.names if n in data.labels] or list(data.names)
    fid = cfg.fidelity or tuple(pool[-cfg.n_fidelity :])
    cal = cfg.calibration or tuple([n for n in data.names if n not in fid][: cfg.n_calibration])
    notes = []
    if not cal:
        cal = fid
        notes.append(f"int8 calibrated on the fidelity image(s) {', '.join(fid)}: no other image")
    return cal, fid, notes


class Sources(NamedTuple):
    """The mosaics' building blocks: images cropped to one size, and labels if all have one."""

    pixels: list[np.ndarray]
    labels: list[np.ndarray] | None


def _read_label(data: BenchData, name: str, image: np.ndarray, classes: int) -> np.ndarray:
    from ..evaluate import read_label

    path = data.labels[name]
    truth = read_label(path, classes)
    datasets.check_same_size(image, truth, data.images[name], path)
    return truth


def read_sources(data: BenchData, info: metadata.ModelInfo) -> Sources:
    """Read every image (and label); refuse mixed dtypes or a wrong channel count."""
    pixels = [io.read_image(p) for p in data.images.values()]
    for path, im in zip(data.images.values(), pixels, strict=True):
        processing.check_dtype(im)
        processing.check_finite(im)
        try:
            processing.frame_to_chw(im, info.channels)
        except UnetEdgeError as e:
            raise DataError(f"{path}: {e}") from None
    if len({im.dtype for im in pixels}) > 1:
        raise DataError(f"the images in {data.source} mix dtypes; benchmark one kind at a time")
    labels = None
    if len(data.labels) == len(data.images):
        pairs = zip(data.names, pixels, strict=True)
        labels = [_read_label(data, n, im, info.classes) for n, im in pairs]
    h, w = min(im.shape[0] for im in pixels), min(im.shape[1] for im in pixels)
    crop = [np.ascontiguousarray(im[:h, :w]) for im in pixels]
    return Sources(crop, None if labels is None else [lab[:h, :w] for lab in labels])


def synth_image(slices: Sequence[np.ndarray], size: int) -> np.ndarray:
    """A (size, size[, C]) image made of real slices side by side, mirrored so that edges meet.

    Block (i, j) is slice ``(i * cols + j) % len(slices)``, flipped left-right
    when ``j`` is odd and upside-down when ``i`` is odd, then cropped to size.
    The slices must share one shape and dtype.
    """
    h, w = slices[0].shape[:2]
    rows, cols = -(-size // h), -(-size // w)
    out = np.empty((rows * h, cols * w, *slices[0].shape[2:]), dtype=slices[0].dtype)
    for i in range(rows):
        for j in range(cols):
            s = slices[(i * cols + j) % len(slices)]
            s = s[::-1] if i % 2 else s
            s = s[:, ::-1] if j % 2 else s
            out[i * h : (i + 1) * h, j * w : (j + 1) * w] = s
    return np.ascontiguousarray(out[:size, :size])


def _write_frame(stem: Path, image: np.ndarray) -> Path:
    """The image as the file a frame is read from: PNG for 8/16-bit, else TIFF."""
    if image.dtype in (np.uint8, np.uint16):
        return io.write_png(stem.with_suffix(".png"), image)
    return io.write_tiff(stem.with_suffix(".tif"), image)


# ---------------------------------------------------------------------------
# Optional packages


def _missing(module: str, install: str) -> str | None:
    """None if ``module`` imports, else why not and what to install (one line)."""
    try:
        importlib.import_module(module)
    except ImportError as e:
        return f"{e.name or module} is not installed ({install})"
    return None


#: What each optional package gives the benchmark: (module, install hint, what is left out).
OPTIONAL: dict[str, tuple[str, str, str]] = {
    "torch": ("torch", "pip install 'unet-edge[train]'", "PyTorch baseline not measured"),
    "openvino": ("openvino", "pip install 'unet-edge[openvino]'", "OpenVINO not measured"),
    "plot": ("matplotlib", "pip install matplotlib", "bench.png not drawn"),
    "memory": ("psutil", "pip install psutil", "peak memory not measured"),
    "rand_error": ("skimage", "pip install 'unet-edge[eval]'", "adapted Rand error not computed"),
}


def preflight(cfg: BenchConfig) -> dict[str, str]:
    """What this run will leave out, one line each, checked before anything is measured.

    Keys: ``torch`` and ``openvino`` (when asked for), ``plot``, ``memory``,
    and ``rand_error`` (when the data has labels). Also raises at once for a
    missing model or data folder.
    """
    metadata.read(cfg.model)
    data = find_data(cfg.data)
    asked = {b.split("-")[0] for b in cfg.backends}
    wanted = [k for k in ("torch", "openvino") if k in asked] + ["plot", "memory"]
    if data.labels:
        wanted.append("rand_error")
    out = {}
    for key in wanted:
        module, install, what = OPTIONAL[key]
        why = _missing(module, install)
        if why:
            out[key] = f"{what}: {why}"
    return out


# ---------------------------------------------------------------------------
# One frame through the pipeline, timed per stage


def _clocked(fn: Callable[..., Any], t: dict[str, float], stage: str) -> Callable[..., Any]:
    def wrapped(*args: Any) -> Any:
        a = time.perf_counter()
        try:
            return fn(*args)
        finally:
            t[stage] += time.perf_counter() - a

    return wrapped


def timed_frame(
    path: Path,
    info: metadata.ModelInfo,
    plan: tiling.TilePlan,
    predictor: Predictor,
    batch_size: int,
    out_path: Path,
) -> tuple[np.ndarray, dict[str, float]]:
    """Read, normalise, tile, infer, stitch and write one frame; (probabilities, seconds per stage).

    The kernel (:class:`unet_edge.tiling.TileRun`) with a clock around its
    reader ("tile": mirrored windows), its prepare step ("normalise", with the
    image's statistics) and the predictor ("infer"); what remains of the
    kernel's time is "stitch". Plus the file I/O of ``unet-edge run``.
    """
    t: dict[str, float] = dict.fromkeys(STAGES, 0.0)
    c = time.perf_counter
    t0 = c()
    image = io.read_image(path)
    t1 = c()
    scaling = processing.scaling_for(image, info.normalization, info.channels)
    t["read"], t["normalise"] = t1 - t0, c() - t1
    prepare = functools.partial(
        processing.normalize, norm=info.normalization, channels=info.channels, scaling=scaling
    )
    run = tiling.TileRun(
        plan,
        _clocked(tiling.array_reader(image), t, "tile"),
        _clocked(prepare, t, "normalise"),
        info.classes,
        batch_size,
    )
    a, before = c(), t["normalise"]
    dest = run.run(_clocked(predictor, t, "infer"))
    t["stitch"] = c() - a - t["tile"] - (t["normalise"] - before) - t["infer"]
    a = c()
    mask = processing.to_mask(dest)
    io.write_png(out_path, processing.mask_to_image(mask, info.classes))
    t["write"] = c() - a
    return dest, t


def check_masks(
    probs: np.ndarray, ref: np.ndarray, truth: np.ndarray | None = None
) -> dict[str, float]:
    """How far a timed output is from the reference's, and how well its mask fits the labels."""
    mask = processing.to_mask(probs)
    out = {
        "max_abs_prob_diff": float(np.max(np.abs(ref - probs))),
        "class_diff_share": float(np.mean(processing.to_mask(ref) != mask)),
    }
    if truth is not None:
        out["label_agreement"] = float(np.mean(mask == truth))
    return out


class _PeakRSS:
    """Samples the process's resident memory in a thread; ``peak`` in bytes (None: no psutil)."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.peak = self.start = 0
        self._stop = threading.Event()
        self._proc: Any = None

    def _rss(self) -> int:
        return int(self._proc.memory_info().rss) if self._proc is not None else 0

    def __enter__(self) -> _PeakRSS:
        with contextlib.suppress(ImportError):  # psutil is optional: then no memory figures
            import psutil

            self._proc = psutil.Process()
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

    def mib(self, since_start: bool = False) -> float | None:
        if self._proc is None:
            return None
        return (self.peak - (self.start if since_start else 0)) / 2**20


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
    """A Segmenter on ``provider`` (onnxruntime's, or openvino) as a backend, or why not."""
    from ..engines.select import ProviderOptions
    from ..runtime import Segmenter

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
        import torch

        from ..training.baseline import predictor
    except ImportError as e:
        return _Backend("torch", skipped=f"{e.name} is not installed ({OPTIONAL['torch'][1]})")
    try:
        run = predictor(model, cfg.threads)
    except UnetEdgeError as e:
        return _Backend("torch", skipped=str(e))
    return _Backend(
        "torch", run, notes=[f"torch {torch.__version__}, {torch.get_num_threads()} threads"]
    )


def _int8_backend(
    name: str, cfg: BenchConfig, work: Path, calibrate: Sequence[Path]
) -> tuple[_Backend, dict[str, Any]]:
    """The int8 model (given, or quantised now on ``calibrate`` with the agreement gate run on
    this backend's provider) on ``ort-int8`` or ``openvino-int8``; and its statistics."""
    provider = "cpu" if name == "ort-int8" else "openvino"
    if cfg.int8_model is not None:
        return _ort_backend(name, cfg.int8_model, provider, cfg), {"model": str(cfg.int8_model)}
    from .. import precision

    out = work / f"model.{provider}.int8.onnx"
    threshold = precision.AGREEMENT_THRESHOLD if cfg.int8_threshold is None else cfg.int8_threshold
    try:
        rep = precision.quantize(
            cfg.model, calibrate, out, threshold=threshold, overwrite=True, provider=provider
        )
    except UnetEdgeError as e:  # refused by its gate, or the provider cannot run here
        return _Backend(name, skipped=str(e)), {"refused": str(e)}
    info = {k: v for k, v in rep.agreement.items() if k != "per_image"}
    stats = {"calibration": [p.stem for p in calibrate], "seconds": rep.seconds, **info}
    return _ort_backend(name, out, provider, cfg), stats


def _gpu_backend(name: str, cfg: BenchConfig) -> _Backend:
    from ..engines import select as providers

    prov = name.split("-")[0]
    if prov not in [p.value for p in providers.installed()]:
        return _Backend(name, skipped=f"{prov} is not compiled into this onnxruntime build")
    why = providers.probe(prov)
    if why is not None:
        return _Backend(name, skipped=why)
    return _ort_backend(name, cfg.model, prov, cfg, trt_fp16=name.endswith("fp16"))


def _open_backends(
    cfg: BenchConfig, work: Path, calibrate: Sequence[Path]
) -> tuple[list[_Backend], dict[str, Any] | None]:
    """Every backend asked for, opened or skipped with the reason; and the int8 statistics."""
    out: list[_Backend] = []
    int8: dict[str, Any] = {}
    for name in cfg.backends:
        if name.startswith("openvino") and importlib.util.find_spec("openvino") is None:
            out.append(
                _Backend(name, skipped=f"openvino is not installed ({OPTIONAL['openvino'][1]})")
            )
        elif name == "torch":
            out.append(_torch_backend(cfg.model, cfg))
        elif name == "ort-fp32":
            out.append(_ort_backend(name, cfg.model, "cpu", cfg))
        elif name.endswith("int8"):
            b, int8[name] = _int8_backend(name, cfg, work, calibrate)
            out.append(b)
        elif name.startswith("openvino"):
            precision = name.split("-")[1]
            out.append(_ort_backend(name, cfg.model, "openvino", cfg, precision=precision))
        else:
            out.append(_gpu_backend(name, cfg))
    return out, int8 or None


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


# A dozen independent FMA chains per thread (AVX-512 where the CPU has it, else AVX2+FMA):
# the fp32 arithmetic ceiling that no convolution can beat.
_FMA_MAIN = r"""
int main(int argc, char **argv) {
  long n = atol(argv[1]); int wide = __builtin_cpu_supports("avx512f");
  double best = 0; float sink = 0;
  for (int r = 0; r < 5; r++) {
    double t = omp_get_wtime();
    #pragma omp parallel reduction(+:sink)
    sink += wide ? k512(n) : k256(n);
    t = omp_get_wtime() - t;
    double g = 2.0 * 12 * (wide ? 16 : 8) * (double)n * omp_get_max_threads() / t / 1e9;
    if (g > best) best = g;
  }
  printf("{\"gflops\": %.3f, \"isa\": \"%s\", \"threads\": %d, \"sink\": %g}\n",
         best, wide ? "avx512f" : "avx2+fma", omp_get_max_threads(), (double)sink);
  return 0;
}
"""


def _fma_kernel(name: str, isa: str, width: int) -> str:
    """C for one ISA: 12 independent ``c = c * a + b`` chains, ``n`` steps, summed at the end."""
    v, p = (f"__m{width}", f"_mm{width}")
    chains = range(12)
    decl = " ".join(f"{v} c{i} = {p}_set1_ps({i}.f);" for i in chains)
    step = " ".join(f"c{i} = {p}_fmadd_ps(c{i}, a, b);" for i in chains)
    total = " ".join(f"s = {p}_add_ps(s, c{i});" for i in chains)
    return (
        f'__attribute__((target("{isa}"))) static float {name}(long n) {{\n'
        f"  {v} a = {p}_set1_ps(1.0000001f), b = {p}_set1_ps(-1e-7f), s = {p}_set1_ps(0.f);\n"
        f"  {decl}\n  for (long k = 0; k < n; k++) {{ {step} }}\n  {total}\n"
        f"  float out[{width // 32}]; memcpy(out, &s, sizeof out);\n"
        f"  float t = 0; for (int i = 0; i < {width // 32}; i++) t += out[i];\n  return t;\n}}\n"
    )


def _fma_source() -> str:
    head = "".join(f"#include <{h}.h>\n" for h in ("immintrin", "omp", "stdio", "stdlib", "string"))
    kernels = _fma_kernel("k512", "avx512f", 512) + _fma_kernel("k256", "avx2,fma", 256)
    return head + kernels + _FMA_MAIN


def fma_ceiling(threads: int | None = None, iterations: int = 50_000_000) -> dict[str, Any]:
    """The fp32 FMA ceiling in GFLOP/s: a C loop of 12 FMA chains per thread, built now.

    Needs a C compiler with OpenMP (``$CC`` or ``cc``); without one the
    result holds ``error`` and no ``gflops``. ``threads``: OpenMP threads
    (default: every core).
    """
    with tempfile.TemporaryDirectory(prefix="unet-edge-fma-") as d:
        src, exe = Path(d) / "fma.c", Path(d) / "fma"
        src.write_text(_fma_source(), encoding="utf-8")
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
    return probs, _row(backend.name, info, plan, batch, walls, stages, mem)


def _row(
    name: str,
    info: metadata.ModelInfo,
    plan: tiling.TilePlan,
    batch: int,
    walls: Sequence[float],
    stages: Sequence[dict[str, float]],
    mem: _PeakRSS,
) -> dict[str, Any]:
    """The figures of one configuration from its timed repeats."""
    med = {s: statistics.median(x[s] for x in stages) for s in STAGES}
    wall = statistics.median(walls)
    flops = cost.conv_flops(info.architecture, *plan.tile_shape) * plan.n_tiles
    activation = cost.activation_bytes(info.architecture, *plan.tile_shape, batch=batch)
    return {
        "backend": name,
        "size": plan.height,
        "tile": plan.tile_shape[0],
        "batch": batch,
        "tiles": plan.n_tiles,
        "repeats": len(walls),
        "wall_s": wall,
        "p50_s": float(np.percentile(walls, 50)),
        "p99_s": float(np.percentile(walls, 99)),
        "stages_s": med,
        "mpx_per_s": plan.height * plan.width / wall / 1e6,
        "non_model_share": 1.0 - med["infer"] / sum(med.values()),
        "gflop": flops / 1e9,
        "gflops": flops / med["infer"] / 1e9,
        "peak_rss_mib": mem.mib(),
        "peak_rss_increase_mib": mem.mib(since_start=True),
        "activation_estimate_mib": activation / 2**20,
    }


def _default_tile(
    info: metadata.ModelInfo, shape: tuple[int, ...], cfg: BenchConfig
) -> tuple[int, int]:
    """The tile a default :class:`~unet_edge.runtime.Segmenter` picks for this image size."""
    from ..runtime import DEFAULT_MAX_TILE, DEFAULT_MEMORY_BUDGET

    return tiling.choose_tile(
        (int(shape[0]), int(shape[1])),
        info.geometry,
        DEFAULT_MAX_TILE,
        tile_bytes=functools.partial(
            cost.activation_bytes, info.architecture, batch=cfg.batch_size
        ),
        memory_budget=DEFAULT_MEMORY_BUDGET,
    )


@dataclass
class _Context:
    """What every measurement of one run shares."""

    cfg: BenchConfig
    info: metadata.ModelInfo
    data: BenchData
    sources: Sources
    work: Path
    say: Callable[[str], None]
    live: list[_Backend] = field(default_factory=list)  # the reference first

    def plan(self, size: int, tile: int | Sequence[int] | None = None) -> tiling.TilePlan:
        shape = (size, size)
        chosen = tile or self.cfg.tile or _default_tile(self.info, shape, self.cfg)
        return tiling.plan(shape, self.info.geometry, chosen)

    def frame(self, size: int, stem: str) -> tuple[Path, np.ndarray | None]:
        """A size x size mosaic written to disk, and its labels (None without)."""
        path = _write_frame(self.work / stem, synth_image(self.sources.pixels, size))
        labels = self.sources.labels
        return path, None if labels is None else synth_image(labels, size)


def _measure_sizes(ctx: _Context) -> tuple[list[dict[str, Any]], np.ndarray | None]:
    """Every backend at every size, each checked against the reference; the sweep's reference."""
    rows: list[dict[str, Any]] = []
    sweep_ref = None
    for size in ctx.cfg.sizes:
        path, truth = ctx.frame(size, f"synth_{size}")
        mask, plan = ctx.work / "mask.png", ctx.plan(size)
        ref = None
        for b in ctx.live:
            ctx.say(f"{b.name} {size}x{size} tile {plan.tile_shape[0]} batch {ctx.cfg.batch_size}")
            probs, row = _measure(b, path, ctx.info, plan, ctx.cfg, ctx.cfg.batch_size, mask)
            ref = probs if ref is None else ref
            row["check"] = check_masks(probs, ref, truth)
            rows.append(row)
            del probs
        if size == ctx.cfg.sweep_size:
            sweep_ref = ref
    return rows, sweep_ref


def _sweeps(ctx: _Context, ref: np.ndarray | None) -> dict[str, Any]:
    """Tile and batch sweeps with ort-fp32 at ``sweep_size``, each checked against ``ref``."""
    b = ctx.live[0]
    if b.name != "ort-fp32":
        return {}
    assert b.predictor is not None
    size, cfg, g = ctx.cfg.sweep_size, ctx.cfg, ctx.info.geometry
    path, truth = ctx.frame(size, "sweep")
    mask_path = ctx.work / "sweep_mask.png"
    if ref is None:  # the default configuration's output, the sweep's reference
        ref = timed_frame(path, ctx.info, ctx.plan(size), b.predictor, cfg.batch_size, mask_path)[0]
    tiles = {t for t in cfg.tile_sweep if g.is_legal(t)} | {g.input_for_output(size)}
    default = ctx.plan(size).tile_shape
    # Ascending tiles, so each memory increase belongs to its tile; the last is the whole image.
    runs = [("tile", t, 1) for t in sorted(tiles)] + [
        ("batch", default, n) for n in cfg.batch_sweep
    ]
    out: dict[str, Any] = {"size": size, "tile": [], "batch": []}
    for kind, tile, n in runs:
        plan = ctx.plan(size, tile)
        ctx.say(f"{kind} sweep {size}x{size} tile {plan.tile_shape[0]} batch {n}")
        probs, row = _measure(b, path, ctx.info, plan, cfg, n, mask_path)
        out[kind].append({"sweep": kind, **row, "check": check_masks(probs, ref, truth)})
    return out


def _rand_error(truth: np.ndarray, probs: np.ndarray) -> float:
    from skimage.metrics import adapted_rand_error

    from ..evaluate import foreground_components

    pred = foreground_components(processing.to_mask(probs))
    return float(adapted_rand_error(foreground_components(truth), pred, ignore_labels=(0,))[0])


def _fidelity(ctx: _Context, names: Sequence[str], rand: bool) -> list[dict[str, Any]]:
    """Each backend on the real fidelity images through the kernel, against the reference.

    With labels: agreement of the mask with them and, if ``rand``, the adapted
    Rand error and its change from the reference's.
    """
    rows = []
    data = ctx.data
    for name in names:
        path = data.images[name]
        image = io.read_image(path)
        truth = _read_label(data, name, image, ctx.info.classes) if name in data.labels else None
        plan = tiling.plan(
            image.shape[:2], ctx.info.geometry, _default_tile(ctx.info, image.shape[:2], ctx.cfg)
        )
        ref, base = None, None
        for b in ctx.live:
            assert b.predictor is not None
            probs = timed_frame(
                path, ctx.info, plan, b.predictor, ctx.cfg.batch_size, ctx.work / "fid.png"
            )[0]
            ref = probs if ref is None else ref
            row: dict[str, Any] = {"backend": b.name, "image": name}
            row.update(check_masks(probs, ref, truth))
            if truth is not None and rand:
                row["rand_error"] = _rand_error(truth, probs)
                base = row["rand_error"] if base is None else base
                row["rand_error_change"] = row["rand_error"] - base
            rows.append(row)
    return rows


def _summarise_fidelity(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per backend: the largest probability difference, and the mean of the other figures."""
    out: dict[str, dict[str, float]] = {}
    for name in dict.fromkeys(r["backend"] for r in rows):
        rs = [r for r in rows if r["backend"] == name]
        out[name] = {"max_abs_prob_diff": max(r["max_abs_prob_diff"] for r in rs)}
        for key in ("class_diff_share", "label_agreement", "rand_error", "rand_error_change"):
            if all(key in r for r in rs):
                out[name][key] = float(np.mean([r[key] for r in rs]))
    return out


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="unet-edge-bench-") as d:
        yield Path(d)


# ---------------------------------------------------------------------------
# The run


def _describe(
    cfg: BenchConfig, info: metadata.ModelInfo, data: BenchData, left_out: dict[str, str]
) -> dict[str, Any]:
    """The result's header: configuration, machine, model, data and what is left out."""
    cal, fid, notes = _choose(data, cfg)
    return {
        "config": _jsonable(asdict(cfg)),
        "machine": _machine(),
        "model": {
            "path": str(cfg.model),
            "name": info.name,
            "precision": info.precision.value,
            "architecture": info.architecture.to_dict(),
        },
        "data": {
            "source": data.source,
            "images": len(data.images),
            "labelled": len(data.labels),
            "calibration": list(cal),
            "fidelity": list(fid),
            "notes": notes,
        },
        "left_out": dict(left_out),
    }


def run(cfg: BenchConfig, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the benchmark; writes ``bench.json``, ``bench.md`` and ``bench.png`` to ``out_dir``.

    Optional packages are checked first (:func:`preflight`); what they would
    give is left out with the reason in ``result["left_out"]``.
    """
    say = progress or (lambda _msg: None)
    t_all = time.perf_counter()
    left_out = preflight(cfg)
    info, data = metadata.read(cfg.model), find_data(cfg.data)
    result = _describe(cfg, info, data, left_out)
    sources = read_sources(data, info)
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    say(f"measuring the fp32 peak (numpy SGEMM {cfg.gemm_n})")
    result["peak"] = gemm_peak(cfg.gemm_n, cfg.threads)
    say("measuring the fp32 FMA ceiling (C, 12 FMA chains per thread)")
    result["ceiling"] = fma_ceiling(cfg.threads, 2_000_000 if cfg.quick else 20_000_000)
    with _workdir() as work:
        say("opening backends" + (" (quantising int8)" if "ort-int8" in cfg.backends else ""))
        calibrate = [data.images[n] for n in result["data"]["calibration"]]
        backends, result["int8"] = _open_backends(cfg, work, calibrate)
        ctx = _Context(cfg, info, data, sources, work, say)
        try:
            result.update(
                _measure_all(
                    ctx, backends, result["data"]["fidelity"], "rand_error" not in left_out
                )
            )
        finally:
            for b in backends:
                b.close()
    _add_ratios(result["rows"], result["peak"]["peak_gflops"], result["ceiling"].get("gflops"))
    result["seconds"] = time.perf_counter() - t_all
    write_results(result, cfg.out_dir)
    return result


def _measure_all(
    ctx: _Context, backends: Sequence[_Backend], fidelity: Sequence[str], rand: bool
) -> dict[str, Any]:
    """Rows, sweeps and fidelity with the backends that opened (ort-fp32, the reference, first)."""
    ctx.live = sorted((b for b in backends if b.predictor), key=lambda b: b.name != "ort-fp32")
    skipped = {b.name: b.skipped for b in backends if b.skipped}
    if not ctx.live:
        raise ConfigError(f"no backend could run here: {skipped}")
    rows, sweep_ref = _measure_sizes(ctx)
    sweeps = _sweeps(ctx, sweep_ref)
    del sweep_ref
    ctx.say("fidelity on " + ", ".join(fidelity))
    fid = _fidelity(ctx, fidelity, rand)
    return {
        "reference": ctx.live[0].name,
        "skipped": skipped,
        "notes": {b.name: b.notes for b in backends if b.notes},
        "rows": rows,
        "sweeps": sweeps,
        "fidelity": fid,
        "fidelity_summary": _summarise_fidelity(fid),
    }


def _add_ratios(rows: list[dict[str, Any]], peak: float | None, ceiling: float | None) -> None:
    """Shares of the SGEMM peak and the FMA ceiling; speed relative to torch and ORT fp32."""
    torch_wall = {r["size"]: r["wall_s"] for r in rows if r["backend"] == "torch"}
    fp32_wall = {r["size"]: r["wall_s"] for r in rows if r["backend"] == "ort-fp32"}
    for r in rows:
        r["peak_share"] = r["gflops"] / peak if peak else None
        r["ceiling_share"] = r["gflops"] / ceiling if ceiling else None
        t = torch_wall.get(r["size"])
        r["speedup_vs_torch"] = t / r["wall_s"] if t else None
        f = fp32_wall.get(r["size"])
        r["speedup_vs_fp32"] = f / r["wall_s"] if f else None


def _machine() -> dict[str, Any]:
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


def _jsonable(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _jsonable(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_jsonable(v) for v in d]
    if isinstance(d, Path):
        return str(d)
    return d


def write_results(result: dict[str, Any], out_dir: Path) -> list[Path]:
    """``bench.json``, ``bench.md`` and (with matplotlib) ``bench.png``, each written atomically.

    Both texts are rendered before anything is written, and ``bench.json``
    goes last, so a failure never leaves a half-written file or a JSON newer
    than its table. Without matplotlib the plot is left out and the reason
    recorded in ``result["left_out"]["plot"]``.
    """
    md = markdown(result)
    text = json.dumps(result, indent=2, sort_keys=True)
    written = []
    png = out_dir / "bench.png"
    if "plot" in result.get("left_out", {}):
        png.unlink(missing_ok=True)  # an earlier run's plot would pass for this run's
    else:
        with io.atomic_path(png) as tmp:
            plot(result, tmp)
        written.append(png)
    for name, content in (("bench.md", md), ("bench.json", text)):
        with io.atomic_path(out_dir / name) as tmp:
            tmp.write_text(content, encoding="utf-8")
        written.append(out_dir / name)
    return written


# ---------------------------------------------------------------------------
# Reports


def _f(v: Any, fmt: str = "", scale: float = 1.0, unit: str = "") -> str:
    return "–" if v is None else format(v if scale == 1.0 else scale * v, fmt) + unit


Column = tuple[str, Callable[[dict[str, Any]], str]]


def _col(head: str, key: str, fmt: str = "", scale: float = 1.0, unit: str = "") -> Column:
    """A table column showing ``row[key]`` (or ``row["check"][key]`` when the row has checks)."""

    def cell(row: dict[str, Any]) -> str:
        src = row if key in row else row.get("check", {})
        return _f(src.get(key), fmt, scale, unit)

    return head, cell


#: Every column of the tables, by heading.
COLUMNS = {
    c[0]: c
    for c in (
        _col("backend", "backend"),
        _col("sweep", "sweep"),
        _col("image", "size", unit="²"),
        _col("tile", "tile"),
        _col("batch", "batch"),
        _col("tiles", "tiles"),
        _col("n", "repeats"),
        _col("wall s (p50)", "wall_s", ".3f"),
        _col("p99 s", "p99_s", ".3f"),
        _col("Mpx/s", "mpx_per_s", ".2f"),
        _col("vs torch", "speedup_vs_torch", ".2f", unit="x"),
        _col("vs ORT fp32", "speedup_vs_fp32", ".2f", unit="x"),
        _col("model GFLOP/s", "gflops", ".0f"),
        _col("% peak", "peak_share", ".0f", 100),
        _col("% FMA", "ceiling_share", ".0f", 100),
        _col("non-model %", "non_model_share", ".1f", 100),
        _col("process peak RSS MiB", "peak_rss_mib", ".0f"),
        _col("activation estimate MiB", "activation_estimate_mib", ".0f"),
        _col("RSS increase MiB", "peak_rss_increase_mib", ".0f"),
        _col("max abs Δp", "max_abs_prob_diff", ".2e"),
        _col("class Δ %", "class_diff_share", ".3f", 100),
        _col("label agreement %", "label_agreement", ".2f", 100),
        _col("adapted Rand error", "rand_error", ".4f"),
        _col("change", "rand_error_change", "+.4f"),
    )
}
#: The check of each timed output, shown beside its figures.
CHECKS = "max abs Δp | class Δ % | label agreement %"
ROW_COLUMNS = (
    "backend | image | tile | tiles | n | wall s (p50) | p99 s | Mpx/s | vs torch | vs ORT fp32 | "
    "model GFLOP/s | % peak | % FMA | non-model % | process peak RSS MiB | " + CHECKS
)
SWEEP_COLUMNS = (
    "sweep | tile | batch | tiles | wall s (p50) | Mpx/s | model GFLOP/s | "
    "activation estimate MiB | RSS increase MiB | " + CHECKS
)
FIDELITY_COLUMNS = "backend | " + CHECKS + " | adapted Rand error | change"


def _columns(heads: str, rows: Iterable[dict[str, Any]]) -> list[str]:
    """A table of ``rows`` with the columns named in ``heads`` ("a | b | c")."""
    columns = [COLUMNS[h] for h in heads.split(" | ")]
    return _table([h for h, _ in columns], [[cell(r) for _, cell in columns] for r in rows])


def _table(head: Sequence[str], body: Iterable[Sequence[str]]) -> list[str]:
    """Markdown table lines."""
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    return lines + ["| " + " | ".join(r) + " |" for r in body]


def _core(peak: dict[str, Any]) -> str:
    run = peak["runs"].get(peak.get("peak_from") or "", {})
    return str(run.get("openblas_core") or "unknown")


def _ceiling_text(ceiling: dict[str, Any]) -> str:
    if "gflops" not in ceiling:
        return f"fp32 FMA ceiling not measured ({ceiling.get('error', 'no result')})"
    return (
        f"fp32 FMA ceiling {ceiling['gflops']:.0f} GFLOP/s ({ceiling['isa']}, "
        f"{ceiling['threads']} threads, C loop of 12 FMA chains per thread)"
    )


def _md_intro(result: dict[str, Any]) -> list[str]:
    peak, m, d, mach = result["peak"], result["model"], result["data"], result["machine"]
    a = m["architecture"]
    ceiling = _ceiling_text(result.get("ceiling", {}))
    labels = f", {d['labelled']} with labels" if d["labelled"] else ", no labels"
    return [
        "# unet-edge benchmark",
        "",
        f"Model `{Path(m['path']).name}` ({m['name']}, U-Net depth {a['depth']}, base width "
        f"{a['base_width']}, {m['precision']}); CPU {mach['cpu']} "
        f"({mach.get('cpu_flags', 'flags unknown')}), {mach['cores']} cores; "
        f"onnxruntime {mach['onnxruntime']}. Data: {d['source']} ({d['images']} image(s)"
        f"{labels}). fp32 peak: numpy SGEMM {peak['n']} = {_f(peak['peak_gflops'], '.0f')} "
        f"GFLOP/s ({peak['peak_from']}; OPENBLAS_CORETYPE in the environment: "
        f"{peak['environment'].get('OPENBLAS_CORETYPE')}; OpenBLAS core {_core(peak)}); "
        f"{ceiling}. "
        "Each row: n timed frames (median, p99) after every batch shape was warmed up once; "
        "one frame = read the image file, normalise, tile, infer, stitch, write mask PNG. "
        "Images are the data's images laid side by side and mirrored; the tile is what a "
        "default Segmenter picks. % peak = model GFLOP/s (conv FLOPs / infer time) over the "
        "SGEMM peak, % FMA over the FMA ceiling (int8 and bf16 rows count the same FLOPs, so "
        f"they can exceed 100%). Every row's output is checked: Δp and class Δ against "
        f"{result['reference']} on the same image, label agreement where labels exist.",
    ]


def _md_rows(result: dict[str, Any]) -> list[str]:
    return ["", *_columns(ROW_COLUMNS, result["rows"])]


def _md_stages(result: dict[str, Any]) -> list[str]:
    rows = result["rows"]
    biggest = max(r["size"] for r in rows)
    body = [
        [r["backend"], *(f"{r['stages_s'][s]:.4f}" for s in STAGES)]
        for r in rows
        if r["size"] == biggest
    ]
    intro = f"Stages at {biggest}x{biggest}, seconds (median):"
    return ["", intro, "", *_table(["backend", *STAGES], body)]


def _md_sweeps(result: dict[str, Any]) -> list[str]:
    sw = result.get("sweeps") or {}
    if not sw:
        return []
    intro = f"Sweeps, ort-fp32, {sw['size']}x{sw['size']} (checked against the default tile):"
    return ["", intro, "", *_columns(SWEEP_COLUMNS, sw["tile"] + sw["batch"])]


def _md_fidelity(result: dict[str, Any]) -> list[str]:
    fs = result.get("fidelity_summary") or {}
    if not fs:
        return []
    names = ", ".join(result["data"]["fidelity"])
    intro = f"Fidelity against {result['reference']} on the image(s) {names}, whole:"
    rows = [{"backend": name, **s} for name, s in fs.items()]
    return ["", intro, "", *_columns(FIDELITY_COLUMNS, rows)]


def _md_left_out(result: dict[str, Any]) -> list[str]:
    items = {**result.get("left_out", {}), **result.get("skipped", {})}  # one line a key
    notes = result["data"].get("notes", [])
    if not items and not notes:
        return []
    return (
        ["", "Not measured, and notes:", ""]
        + [f"- {k}: {v}" for k, v in items.items()]
        + [f"- {n}" for n in notes]
    )


def markdown(result: dict[str, Any]) -> str:
    """The results as Markdown tables (no targets: a project adds its own)."""
    parts = (_md_intro, _md_rows, _md_stages, _md_sweeps, _md_fidelity, _md_left_out)
    return "\n".join(line for part in parts for line in part(result)) + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    """Throughput by image size per backend, and the tile sweep, as a PNG (needs matplotlib)."""
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
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)
