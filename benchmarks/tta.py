"""Test-time augmentation: its gain on ISBI 2012 slices 20-24 and its cost, in one run.

The shipped model with its threshold (the arg-max of the exported model), with
and without ``tta=True`` (the probabilities averaged over the 8 flips and
rotations), scored as ``unet-edge evaluate`` scores (pixel error, Rand error
raw and with predicted cells expanded by 10 px), and timed per slice,
alternating the two so that both see the same machine load. Checks before it
reports: the masks without TTA give exactly the shipped model's metrics
(export/isbi2012-default/metrics.json), and TTA with small tiles equals TTA
with one tile over the whole slice (probabilities within 1e-5). A second table
compares both at other thresholds on the model's class-1 probability (the
shipped threshold is folded into the model, so 0.5 is the shipped one).

    python benchmarks/tta.py [--model M.onnx] [--data DIR] [--names 20-24] [--repeats 3]
        [--json benchmarks/results/tta.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from unet_edge import Segmenter, bench
from unet_edge.datasets import parse_names
from unet_edge.evaluate import mean_metrics, read_array, read_label, segmentation_metrics
from unet_edge.processing import to_mask

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "isbi2012" / "train"
SHIPPED = ROOT / "export" / "isbi2012-default" / "metrics.json"
KEYS = ("pixel_error", "rand_error", "rand_error_expanded")
SMALL_TILE = 300  # many tiles per slice for the tiled == whole-image check
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def timed(seg: Segmenter, image: np.ndarray) -> tuple[np.ndarray, float]:
    t = time.perf_counter()
    probs = seg.predict(image)
    return probs, time.perf_counter() - t


def measure(model: str | None, data: Path, names: list[str], repeats: int) -> dict:
    plain, tta = Segmenter(model), Segmenter(model, tta=True)
    per: dict[str, dict] = {}
    kept: dict[str, list] = {"plain": [], "tta": [], "truth": []}
    for name in names:
        image = read_array(data / "image" / f"{name}.png")
        truth = read_label(data / "label" / f"{name}.png")
        plain.warmup(image.shape[:2])
        tta.warmup(image.shape[:2])
        times: dict[str, list[float]] = {"plain": [], "tta": []}
        for _ in range(repeats):  # alternate: both see the same load
            p, dt = timed(plain, image)
            times["plain"].append(dt)
            q, dt = timed(tta, image)
            times["tta"].append(dt)
        per[name] = {
            "plain": segmentation_metrics(to_mask(p), truth),
            "tta": segmentation_metrics(to_mask(q), truth),
            "seconds": {k: statistics.median(v) for k, v in times.items()},
            "changed_pixels": float(np.mean(to_mask(p) != to_mask(q))),
        }
        for k, v in (("plain", p[1]), ("tta", q[1]), ("truth", truth)):
            kept[k].append(v)
    return {
        "thresholds": sweep(kept),
        "plain": mean_metrics([v["plain"] for v in per.values()]),
        "tta": mean_metrics([v["tta"] for v in per.values()]),
        "seconds": {
            k: sum(v["seconds"][k] for v in per.values()) / len(per) for k in ("plain", "tta")
        },
        "plan": repr(plain.plan_for((512, 512))),
        "images": per,
    }


def sweep(kept: dict[str, list]) -> list[dict]:
    """Mean scores of both when class 1 is where its probability > t, for each threshold."""
    rows = []
    for t in THRESHOLDS:
        row: dict = {"threshold": t}
        for k in ("plain", "tta"):
            per = [
                segmentation_metrics((p > t).astype(np.uint8), truth)
                for p, truth in zip(kept[k], kept["truth"], strict=True)
            ]
            row[k] = {m: v for m, v in mean_metrics(per).items() if m in KEYS}
        rows.append(row)
    return rows


def check_shipped(result: dict, model: str | None) -> None:
    """Without TTA the masks must give the shipped model's recorded metrics."""
    if model is not None or not SHIPPED.is_file():
        return
    want = json.loads(SHIPPED.read_text())["mean"]
    for k in KEYS:
        assert abs(result["plain"][k] - want[k]) < 1e-9, (k, result["plain"][k], want[k])


def check_tiled(model: str | None, data: Path, name: str) -> float:
    """Max |TTA with small tiles - TTA with one whole-slice tile| on one slice."""
    image = read_array(data / "image" / f"{name}.png")
    whole = Segmenter(model, tta=True)
    assert whole.plan_for(image.shape[:2]).n_tiles == 1
    tiled = Segmenter(model, tile=SMALL_TILE, tta=True)
    assert tiled.plan_for(image.shape[:2]).n_tiles > 1
    diff = float(np.max(np.abs(tiled.predict(image) - whole.predict(image))))
    assert diff <= 1e-5, diff
    return diff


def table(result: dict) -> str:
    rows = ["| | " + " | ".join(KEYS) + " | seconds per slice |", "| --- |" + " --- |" * 4]
    for k, label in (("plain", "without TTA"), ("tta", "`--tta`")):
        scores = " | ".join(f"{result[k][m]:.4f}" for m in KEYS)
        rows.append(f"| {label} | {scores} | {result['seconds'][k]:.2f} |")
    head = "| threshold | " + " | ".join(KEYS) + " (without TTA / with) |"
    rows += ["", head, "| --- |" + " --- |" * 3]
    for r in result["thresholds"]:
        pairs = " | ".join(f"{r['plain'][m]:.4f} / {r['tta'][m]:.4f}" for m in KEYS)
        rows.append(f"| {r['threshold']} | {pairs} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="ONNX model [default: the shipped one]")
    ap.add_argument("--data", type=Path, default=DATA, help="folder with image/ and label/")
    ap.add_argument("--names", default="20-24")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per slice (median)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    names = parse_names(args.names)
    result = measure(args.model, args.data, names, args.repeats)
    check_shipped(result, args.model)
    result["tiled_vs_whole_max_abs"] = check_tiled(args.model, args.data, names[0])
    s = result["seconds"]
    result.update(cpu=bench.machine()["cpu"], time_ratio=s["tta"] / s["plain"], names=names)
    print(f"{result['cpu']}; slices {args.names}; {result['plan']}")
    print(table(result))
    changed = np.mean([v["changed_pixels"] for v in result["images"].values()])
    print(f"TTA costs {result['time_ratio']:.2f}x the time; changes {100 * changed:.2f}% of pixels")
    diff = result["tiled_vs_whole_max_abs"]
    print(f"TTA with {SMALL_TILE}-px tiles vs one whole-slice tile: max |diff| {diff:.1e}")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
