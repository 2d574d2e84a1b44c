"""Choose the EM model's training length and threshold by cross-validation over slices 00-24.

    python export/isbi2012-default/crossval.py --work DIR [DATA_DIR] [--folds 5] [--steps N]
        [--val-every N] [--device cpu|cuda|auto] [--threads N] [--phase all|folds|choose|final]
        [--fold K ...]

The shipped model's step and threshold were chosen on slices 20-24 alone, by
pixel error first. Here every choice rests on all 25 labelled slices, each
predicted by a model that did not train on it, and topology (the adapted Rand
error of the cell labels grown over the membranes, "expanded") counts:

1. ``folds``: the slices in K contiguous folds (5: 00-04, 05-09, ..., 20-24). For
   each, the recipe (``train.py``'s ``CONFIG``: the shipped model's settings)
   trains from scratch on the other slices and validates on the fold every
   ``--val-every`` steps (``WORK/fold{k}.pt``: the step with the lowest expanded
   Rand error; a finished fold is not trained again, an interrupted one resumes
   from its latest state, ``WORK/fold{k}.last.pt``). ``--phase folds --fold K``
   trains only fold K, so folds can run in parallel processes, one thread each.
2. ``choose``: the training length is the validation step with the lowest
   expanded Rand error averaged over the folds (arg-max masks); the threshold on
   the cell probability is taken from the folds' kept checkpoints, each on its
   own fold, pooled over the slices: the lowest expanded Rand error among the
   thresholds whose pixel error is at most :data:`PIXEL_TARGET`, else the one
   nearest to meeting both targets (:func:`choose_threshold`). ``WORK/crossval.json``
   holds every fold's history and table, the choice and its cross-validated estimates.
3. ``final``: the recipe trains on all 25 slices for the chosen length (its
   learning rate decays to 0 there), the threshold is baked into the head
   (``with_threshold``), and ``WORK/isbi2012-default.onnx`` is exported with the
   statistics of its training slices (the domain guard) and the 4 nm pixel size.
   To ship it: copy ``WORK/final.pt`` to ``export/isbi2012-default/checkpoint.pt``
   and the ONNX file to ``unet_edge/data/default.onnx``, then run
   ``evaluate.py`` and ``benchmarks/camera_invariance.py`` and update the card.

Cost: K + 1 recipe runs. Measured on a 2-core AMX Xeon: a fold's 3000 steps took
15.6-24.9 min on one thread (two folds at a time, other work beside them), so the five
folds took 62 min of wall time in two processes (``--phase folds --fold K``); a run
continued to more steps resumes from ``fold{k}.last.pt`` (``--steps N``, a new work folder
holding copies of the folds; its estimates are of that two-stage schedule, which ``final``,
one schedule of the chosen length, does not repeat). ``--device cuda`` takes minutes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path
from typing import Any

from unet_edge.datasets import find_pairs, split_folder

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PIXEL_TARGET = 0.08  # the target for unseen slices, as a ceiling for the threshold
RAND_TARGET = 0.06  # the target for the expanded adapted Rand error on unseen slices
THRESHOLDS = [round(0.15 + 0.05 * i, 2) for i in range(11)]  # 0.15 ... 0.65
PIXEL_SIZE_UM = 0.004  # the data's README: about 4 x 4 nm
SELECT = "rand_error_expanded"


def folds(names: list[str], k: int) -> list[list[str]]:
    """``names`` (sorted) in ``k`` contiguous folds of near-equal size."""
    if not 2 <= k <= len(names):
        raise SystemExit(f"--folds must be 2..{len(names)} for {len(names)} slices, got {k}")
    size, extra = divmod(len(names), k)  # the first ``extra`` folds take one more
    ends = [(i + 1) * size + min(i + 1, extra) for i in range(k)]
    return [names[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]


def _recipe(args: argparse.Namespace, **changes: Any) -> Any:
    """train.py's CONFIG with this run's length, validation interval and threads."""
    from train import CONFIG  # the recipe beside this file

    kw = {"steps": args.steps, "val_every": args.val_every, "threads": args.threads}
    return dataclasses.replace(CONFIG, **{k: v for k, v in kw.items() if v is not None}, **changes)


def train_folds(args: argparse.Namespace, parts: list[list[str]]) -> list[dict[str, Any]]:
    """Train one recipe run per fold (kept checkpoints in ``WORK``); their summaries."""
    from unet_edge.training import checkpoint as ckpt
    from unet_edge.training.device import resolve
    from unet_edge.training.loop import TrainEvent, last_path, train

    def report(e: TrainEvent) -> None:
        if e.val is not None:
            print(f"  step {e.step}/{e.steps} {SELECT} {e.val[SELECT]:.4f}", flush=True)

    everyone = [n for part in parts for n in part]
    done = []
    for k, held in enumerate(parts):
        out = args.work / f"fold{k}.pt"
        if args.fold and k not in args.fold:
            continue
        rest = tuple(n for n in everyone if n not in held)
        config = _recipe(args, val_names=tuple(held), train_names=rest, select=SELECT)
        at = finished_step(out)
        if at is None or at < config.steps:  # not started, or interrupted: (re)start or resume
            resume = last_path(out) if at is not None else None
            start = f"resume at step {at}" if resume else f"train on {len(rest)}"
            print(f"fold {k}: validate on {held[0]}-{held[-1]}, {start}", flush=True)
            t0 = time.perf_counter()
            train(
                config,
                args.data,
                out,
                progress=report,
                overwrite=True,
                resume=resume,
                device=resolve(args.device),
            )
            print(f"fold {k}: {(time.perf_counter() - t0) / 60:.1f} min", flush=True)
        # the kept checkpoint's history ends at its step; the latest state's is complete
        latest = ckpt.load(last_path(out)).training.get("history", [])
        history = [h for h in latest if SELECT in h]
        best = dict(ckpt.load(out).metrics)
        done.append({"fold": k, "names": held, "best": best, "history": history})
    return done


def finished_step(out: Path) -> int | None:
    """The step the latest state beside the kept checkpoint ``out`` reached; None when the
    fold has not validated yet (an interrupted fold resumes from there, a finished one is
    kept)."""
    from unet_edge.training import checkpoint as ckpt
    from unet_edge.training.loop import last_path

    last = last_path(out)
    if not (out.exists() and last.exists()):
        return None
    return int(ckpt.load(last).training["step"])


def choose_length(done: list[dict[str, Any]]) -> tuple[int, dict[int, float]]:
    """The validation step with the lowest mean :data:`SELECT` over the folds (weighted by
    their slices), and that mean at every step all folds validated."""
    steps = set.intersection(*({h["step"] for h in d["history"]} for d in done))
    mean = {}
    for s in sorted(steps):
        values = [(next(h for h in d["history"] if h["step"] == s), len(d["names"])) for d in done]
        mean[s] = sum(h[SELECT] * n for h, n in values) / sum(n for _, n in values)
    return min(mean, key=lambda s: (mean[s], s)), mean


def pooled_table(args: argparse.Namespace, done: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The threshold table of each fold's kept checkpoint on its own fold, pooled over the
    slices (fold means weighted by fold size)."""
    from unet_edge.training import checkpoint as ckpt
    from unet_edge.training.data import SegmentationData
    from unet_edge.training.loop import threshold_table

    tables = []
    for d in done:
        c = ckpt.load(args.work / f"fold{d['fold']}.pt")
        data = SegmentationData.from_folder(
            args.data, names=d["names"], w0=0.0, scaling=c.normalization
        )
        d["table"] = threshold_table(c.build_model(), data, c.normalization, THRESHOLDS)
        tables.append((d["table"], len(d["names"])))
    total = sum(n for _, n in tables)
    pooled = []
    for i, t in enumerate(THRESHOLDS):
        keys = [k for k in tables[0][0][i] if k != "threshold"]
        row = {k: sum(tab[i][k] * n for tab, n in tables) / total for k in keys}
        pooled.append({"threshold": t, **row})
    return pooled


def choose_threshold(pooled: list[dict[str, Any]]) -> dict[str, Any]:
    """Lowest expanded Rand error with pixel error <= PIXEL_TARGET; when no threshold is under
    that ceiling, the one nearest to meeting both targets: the lowest
    ``max(pixel error / PIXEL_TARGET, expanded Rand / RAND_TARGET)`` (the lowest pixel error
    alone would take the threshold that merges most cells)."""
    ok = [r for r in pooled if r["pixel_error"] <= PIXEL_TARGET]
    if ok:
        return min(ok, key=lambda r: (r[SELECT], r["pixel_error"]))
    return min(pooled, key=lambda r: max(r["pixel_error"] / PIXEL_TARGET, r[SELECT] / RAND_TARGET))


def train_final(args: argparse.Namespace, names: list[str], choice: dict[str, Any]) -> Path:
    """The recipe on every slice for the chosen length, thresholded and exported."""
    from unet_edge.training import checkpoint as ckpt
    from unet_edge.training.device import resolve
    from unet_edge.training.domain_data import export_with_domain
    from unet_edge.training.loop import train, with_threshold

    config = _recipe(args, val_names=(), train_names=tuple(names), pixel_size=PIXEL_SIZE_UM)
    config = dataclasses.replace(config, steps=choice["steps"], val_every=choice["steps"])
    raw = args.work / "final_raw.pt"
    if not raw.exists():
        train(config, args.data, raw, overwrite=True, device=resolve(args.device))
    c = with_threshold(ckpt.load(raw), choice["threshold"])
    c.metrics = {"crossval": choice["estimate"], "threshold": choice["threshold"]}
    ckpt.save(c, args.work / "final.pt")
    onnx = args.work / "isbi2012-default.onnx"
    provenance = {"recipe": "export/isbi2012-default/crossval.py", **choice["provenance"]}
    report, _ = export_with_domain(
        args.work / "final.pt", onnx, overwrite=True, provenance=provenance
    )
    print(report.summary(), flush=True)
    return onnx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "data", nargs="?", type=Path, default=ROOT.parent / "shared/data/isbi2012/train"
    )
    parser.add_argument("--work", type=Path, required=True, help="fold and final checkpoints")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=None, help="[default: the recipe's]")
    parser.add_argument("--val-every", type=int, default=None, help="[default: the recipe's]")
    parser.add_argument("--threads", type=int, default=None, help="[default: the recipe's]")
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu")
    parser.add_argument("--phase", choices=["all", "folds", "choose", "final"], default="all")
    parser.add_argument(
        "--fold",
        type=int,
        action="append",
        default=[],
        help="train only this fold (repeat; with --phase folds, to run folds in parallel)",
    )
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    names = sorted(n for n, _, _ in find_pairs(*split_folder(args.data)))
    parts = folds(names, args.folds)
    if any(not 0 <= k < len(parts) for k in args.fold):
        raise SystemExit(f"--fold must be 0..{len(parts) - 1}, got {args.fold}")
    if args.fold and args.phase != "folds":
        raise SystemExit("--fold trains part of the folds: use it with --phase folds")
    done = train_folds(args, parts)
    if args.phase == "folds":
        return
    step, by_step = choose_length(done)
    pooled = pooled_table(args, done)
    row = choose_threshold(pooled)
    estimate = {k: v for k, v in row.items() if k != "threshold"}
    choice = {
        "steps": step,
        "threshold": row["threshold"],
        "estimate": estimate,
        "provenance": {"folds": args.folds, "steps": step, "threshold": row["threshold"]},
    }
    result = {
        "folds": done,
        "select": SELECT,
        "pixel_target": PIXEL_TARGET,
        "mean_by_step": by_step,
        "best_steps": [d["best"].get("step") for d in done],
        "median_best_step": statistics.median(d["best"].get("step", 0) for d in done),
        "pooled_table": pooled,
        "choice": choice,
    }
    (args.work / "crossval.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"steps": step, "threshold": row["threshold"], **estimate}, indent=2))
    if args.phase in ("all", "final"):
        print(f"wrote {train_final(args, names, choice)}")


if __name__ == "__main__":
    main()
