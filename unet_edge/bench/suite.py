"""The whole benchmark run: check, describe, measure the machine, open backends, measure, write.

Nothing here prints; :func:`run` says how far it got through ``progress``,
returns the results and writes ``bench.json``, ``bench.md`` and
``bench.png`` (:func:`~unet_edge.bench.report.write_results`).
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .. import metadata
from .backends import open_backends
from .config import BenchConfig, preflight
from .data import BenchData, choose_images, find_data, read_images
from .measure import Context, measure_all
from .report import write_results
from .roofline import fma_ceiling, gemm_peak, machine

__all__ = ["run"]


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    """A scratch folder for the run's mosaics, masks and int8 models, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="unet-edge-bench-") as d:
        yield Path(d)


def _jsonable(d: Any) -> Any:
    """``d`` with tuples as lists and paths as strings, for ``bench.json``."""
    if isinstance(d, dict):
        return {k: _jsonable(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_jsonable(v) for v in d]
    if isinstance(d, Path):
        return str(d)
    return d


def _describe(
    cfg: BenchConfig, info: metadata.ModelInfo, data: BenchData, left_out: dict[str, str]
) -> dict[str, Any]:
    """The result's header: configuration, machine, model, data and what is left out."""
    cal, fid, notes = choose_images(data, cfg)
    return {
        "config": _jsonable(asdict(cfg)),
        "machine": machine(),
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

    Optional packages are checked first (:func:`~unet_edge.bench.config.preflight`);
    what they would give is left out with the reason in ``result["left_out"]``.
    """
    say = progress or (lambda _msg: None)
    t_all = time.perf_counter()
    left_out = preflight(cfg)
    info, data = metadata.read(cfg.model), find_data(cfg.data)
    result = _describe(cfg, info, data, left_out)
    images = read_images(data, info)
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    say(f"measuring the fp32 peak (numpy SGEMM {cfg.gemm_n})")
    result["peak"] = gemm_peak(cfg.gemm_n, cfg.threads)
    say("measuring the fp32 FMA ceiling (C, 12 FMA chains per thread)")
    result["ceiling"] = fma_ceiling(cfg.threads, 2_000_000 if cfg.quick else 20_000_000)
    with _workdir() as work:
        say("opening backends" + (" (quantising int8)" if "ort-int8" in cfg.backends else ""))
        calibrate = [data.images[n] for n in result["data"]["calibration"]]
        backends, result["int8"] = open_backends(cfg, work, calibrate)
        ctx = Context(cfg, info, data, images, work, say)
        try:
            result.update(
                measure_all(ctx, backends, result["data"]["fidelity"], "rand_error" not in left_out)
            )
        finally:
            for b in backends:
                b.close()
    _add_ratios(result["rows"], result["peak"]["peak_gflops"], result["ceiling"].get("gflops"))
    result["seconds"] = time.perf_counter() - t_all
    write_results(result, cfg.out_dir)
    return result


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
