"""Measuring: every backend at every size, the tile and batch sweeps, and fidelity.

Before a configuration is timed, one untimed frame warms up every batch
shape it sends, unless the same backend ran those shapes before; medians and
percentiles are over the timed repeats. A figure is only as good as the
output it was measured on: every timed configuration's probabilities are
compared with the reference backend's (``ort-fp32``) and, where labels
exist, its mask with the labels (:func:`check_masks`), and both are reported
beside the timing.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import cost, io, metadata, processing, tiling
from ..errors import ConfigError
from .backends import Backend
from .config import STAGES, BenchConfig
from .data import BenchData, BenchImages, read_label, synth_image, write_frame
from .timing import PeakRSS, timed_frame

__all__ = ["Context", "check_masks", "measure_all"]


def check_masks(
    probs: np.ndarray, ref: np.ndarray, truth: np.ndarray | None = None
) -> dict[str, float]:
    """How far a timed output is from the reference's, and how well its mask fits the labels.

    ``probs``, ``ref``: float32 (classes, H, W) probabilities; ``truth``: (H, W)
    class indices, or None.
    """
    mask = processing.to_mask(probs)
    out = {
        "max_abs_prob_diff": float(np.max(np.abs(ref - probs))),
        "class_diff_share": float(np.mean(processing.to_mask(ref) != mask)),
    }
    if truth is not None:
        out["label_agreement"] = float(np.mean(mask == truth))
    return out


def _measure(
    backend: Backend,
    path: Path,
    info: metadata.ModelInfo,
    plan: tiling.TilePlan,
    cfg: BenchConfig,
    batch: int,
    out_path: Path,
) -> tuple[np.ndarray, dict[str, Any]]:
    """One configuration timed on the frame in ``path``: (its last probabilities, its row)."""
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
    with PeakRSS() as mem:
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
    mem: PeakRSS,
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
class Context:
    """What every measurement of one run has in common."""

    cfg: BenchConfig
    info: metadata.ModelInfo
    data: BenchData
    images: BenchImages
    work: Path
    say: Callable[[str], None]
    live: list[Backend] = field(default_factory=list)  # the reference first

    def plan(self, size: int, tile: int | Sequence[int] | None = None) -> tiling.TilePlan:
        """The plan of a size x size image with ``tile`` (None: the run's, or the default)."""
        shape = (size, size)
        chosen = tile or self.cfg.tile or _default_tile(self.info, shape, self.cfg)
        return tiling.plan(shape, self.info.geometry, chosen)

    def frame(self, size: int, stem: str) -> tuple[Path, np.ndarray | None]:
        """A size x size mosaic written to disk, and its labels (None without)."""
        path = write_frame(self.work / stem, synth_image(self.images.pixels, size))
        labels = self.images.labels
        return path, None if labels is None else synth_image(labels, size)


def _measure_sizes(ctx: Context) -> tuple[list[dict[str, Any]], np.ndarray | None]:
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


def _sweeps(ctx: Context, ref: np.ndarray | None) -> dict[str, Any]:
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
    """The adapted Rand error of the foreground components of ``probs``' mask against ``truth``."""
    from skimage.metrics import adapted_rand_error

    from ..evaluate import foreground_components

    pred = foreground_components(processing.to_mask(probs))
    return float(adapted_rand_error(foreground_components(truth), pred, ignore_labels=(0,))[0])


def _fidelity(ctx: Context, names: Sequence[str], rand: bool) -> list[dict[str, Any]]:
    """Each backend on the real fidelity images through the kernel, against the reference.

    With labels: agreement of the mask with them and, if ``rand``, the adapted
    Rand error and its change from the reference's.
    """
    rows = []
    data = ctx.data
    for name in names:
        path = data.images[name]
        image = io.read_image(path)
        truth = read_label(data, name, image, ctx.info.classes) if name in data.labels else None
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


def measure_all(
    ctx: Context, backends: Sequence[Backend], fidelity: Sequence[str], rand: bool
) -> dict[str, Any]:
    """Rows, sweeps and fidelity with the backends that opened (ort-fp32, the reference, first).

    ``fidelity``: the names of the images to check fidelity on; ``rand``:
    whether to compute the adapted Rand error (scikit-image is installed).
    """
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
