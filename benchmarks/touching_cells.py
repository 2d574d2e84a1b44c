"""The paper's touching-cell experiment, measured: no weight map vs weight map vs 3-class.

    python benchmarks/touching_cells.py            # the table in docs (about 10-15 min, 1 thread)
    python benchmarks/touching_cells.py --quick    # a CI-size run (about 1 min)

Trains three small U-Nets (width 16, depth 3) for the same steps, seed and
tiles on generated touching-nuclei images
(:func:`unet_edge.training.synthetic.write_folder`, instance labels):

1. ``no weight map``: the two-class target (touching lines as background),
   class balance only (``w0 = 0``);
2. ``weight map``: the same target with the paper's border weights
   (``w0 = 10``, ``sigma = 5`` px, distances to the two nearest *instances*);
3. ``3-class``: background / nucleus / border (2-px bands where nuclei touch),
   with the same weight map.

Each model labels held-out generated images (4-connected regions of the
object class, as ``run --labels``) and is scored by
:func:`unet_edge.evaluate.instance_metrics`: instance F1 at IoU 0.5, merges
(one predicted object over two or more true ones) and splits, pooled over
the images. Prints a Markdown table, writes it as JSON
(``benchmarks/results/touching_cells.json``) and writes the paper's figure
(image, instance labels, two-class target, weight map, 3-class target) to
``docs/assets/touching_cells.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from unet_edge.training.config import TrainConfig, stated_labelling
from unet_edge.training.synthetic import NucleiStyle

ROOT = Path(__file__).resolve().parents[1]
FIGURE = ROOT / "docs" / "assets" / "touching_cells.png"
RESULTS = ROOT / "benchmarks" / "results" / "touching_cells.json"
TRAIN_SEED, TEST_SEED = 3, 4
MIN_SIZE = 10  # px: noise specks, far below the smallest nucleus (12 px across: ~110 px)

BASE = TrainConfig(
    width=16,
    depth=3,
    tile=148,  # output 60 x 60 px: a few nuclei of 12-22 px with their neighbours
    steps=1500,
    batch_size=2,
    lr=1e-3,
    seed=2015,
    val_every=10**6,  # no validation: every variant keeps its last weights
    threads=1,
    labels="instances",
    norm_low=1.0,
    norm_high=99.8,
    norm_clip=False,
    exposure=0.0,  # the camera-offset augmentation clips dim fluorescence to black
)
# One nucleus size range (12-22 px) keeps the tiles, and so the run, small; everything else
# varies as for the shipped model (unet_edge.training.synthetic.NucleiStyle).
STYLE = NucleiStyle(diameter=(12.0, 22.0))
VARIANTS = {
    "no weight map": {"target": "two-class", "w0": 0.0, "class_names": ("background", "cell")},
    "weight map": {"target": "two-class", "w0": 10.0, "class_names": ("background", "cell")},
    "3-class": {
        "target": "three-class",
        "w0": 10.0,
        "classes": 3,
        "class_names": ("background", "cell", "border"),
    },
}


def _colour_labels(labels: np.ndarray) -> np.ndarray:
    """Instance labels -> BGR uint8, one random colour per object, black background."""
    rng = np.random.default_rng(0)
    lut = rng.integers(60, 256, (int(labels.max()) + 1, 3)).astype(np.uint8)
    lut[0] = 0
    return lut[labels]


def _panel(image: np.ndarray, title: str) -> np.ndarray:
    out = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    out = cv2.copyMakeBorder(out, 22, 2, 2, 2, cv2.BORDER_CONSTANT, value=(255, 255, 255))
    cv2.putText(out, title, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def figure(path: Path) -> None:
    """The paper's Fig. 3 on a generated crop: image, labels, target, weight map, 3-class."""
    from unet_edge.io import write_png
    from unet_edge.training.instances import instance_target, instance_weight_map
    from unet_edge.training.synthetic import nuclei_image

    # a dense, in-focus, well-exposed crop, so the touching contacts are easy to see
    style = NucleiStyle(coverage=(0.35, 0.45), out_of_focus=(0.0, 0.0), photons=(300.0, 1000.0))
    image, labels = nuclei_image(np.random.default_rng(2), (200, 200), style, diameter=30.0)
    inst = labels.astype(np.int32)
    two = instance_target(inst, "two-class")
    weights = instance_weight_map(inst, two, 2)
    three = instance_target(inst, "three-class")
    f = image.astype(np.float32)
    lo, hi = np.percentile(f, (1, 99.8))
    gray = (np.clip((f - lo) / max(hi - lo, 1e-6), 0, 1) * 255).astype(np.uint8)
    wmap = cv2.applyColorMap(
        (np.clip(weights / weights.max(), 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET
    )
    three_rgb = np.array([[0, 0, 0], [200, 200, 200], [0, 0, 255]], np.uint8)[three]
    panels = [
        _panel(gray, "image"),
        _panel(_colour_labels(labels), "instance labels"),
        _panel((two * 255).astype(np.uint8), "2-class target"),
        _panel(wmap, f"weight map (max {weights.max():.1f})"),
        _panel(three_rgb, "3-class (border red)"),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_png(path, cv2.cvtColor(np.concatenate(panels, axis=1), cv2.COLOR_BGR2RGB))


def score(checkpoint: Path, config: TrainConfig, folder: Path) -> dict[str, float]:
    """Pooled instance metrics of a checkpoint on a generated folder (object class 1): as
    ``run --labels`` labels, and with objects under :data:`MIN_SIZE` px dropped
    (``run --labels --min-size 10``; keys ending ``_min``). A three-class model's border
    pixels are given back to the nearest object, as its exported metadata states
    (``output.labelling.border``); keys ending ``_cores`` score it without that (objects
    under :data:`MIN_SIZE` px dropped)."""
    from unet_edge.datasets import find_pairs, split_folder
    from unet_edge.evaluate import instance_metrics, pooled_instance_metrics, read_array
    from unet_edge.objects.labels import label_classes
    from unet_edge.training import checkpoint as ckpt
    from unet_edge.training.data import scale_image
    from unet_edge.training.loop import predict_whole

    c = ckpt.load(checkpoint)
    model = c.build_model()
    stated = stated_labelling(config.to_dict())  # what the exported model would say
    border = (config.class_names.index(stated["border"]),) if "border" in stated else ()
    per, per_min, per_cores = [], [], []
    for _, image_path, label_path in find_pairs(*split_folder(folder)):
        image, truth = read_array(image_path), read_array(label_path)
        scaled, _ = scale_image(image[:, :, None], config.scaling())
        mask = predict_whole(model, scaled, c.normalization).argmax(0).astype(np.uint8)
        per.append(instance_metrics(label_classes(mask, (1,), border_classes=border), truth))
        labels = label_classes(mask, (1,), min_size=MIN_SIZE, border_classes=border)
        per_min.append(instance_metrics(labels, truth))
        if border:
            per_cores.append(instance_metrics(label_classes(mask, (1,), min_size=MIN_SIZE), truth))
    rows = {**pooled_instance_metrics(per)}
    rows |= {f"{k}_min": v for k, v in pooled_instance_metrics(per_min).items()}
    if border:
        rows |= {f"{k}_cores": v for k, v in pooled_instance_metrics(per_cores).items()}
    return rows


def run(args: argparse.Namespace, work: Path) -> dict[str, dict[str, Any]]:
    """Generate the folders in ``work``, train each variant there (unless ``--score-only``
    finds its checkpoint already) and score it."""
    from unet_edge.training.loop import TrainEvent
    from unet_edge.training.synthetic import write_folder

    def report(e: TrainEvent) -> None:
        if e.step % 250 == 0:
            print(f"  step {e.step}/{e.steps} loss {e.loss:.3f} {e.rate:.2f} steps/s", flush=True)

    if not args.score_only:
        write_folder(work / "train", args.images, TRAIN_SEED, (192, 192), STYLE)
        write_folder(work / "test", args.test_images, TEST_SEED, (192, 192), STYLE)
    rows: dict[str, dict[str, Any]] = {}
    for name in args.variants.split(","):
        runs = [_variant(args, work, name, seed, report) for seed in args.seeds]
        rows[name] = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
        if len(runs) > 1:  # the spread over training seeds: what one run's F1 can be off by
            rows[name] |= {f"{k}_seeds": [r[k] for r in runs] for k in ("f1", "f1_min")}
    return rows


def _variant(
    args: argparse.Namespace, work: Path, name: str, seed: int, report: Any
) -> dict[str, float]:
    """Train (unless ``--score-only``) and score one variant with one training seed."""
    from unet_edge.training.loop import train

    config = dataclasses.replace(
        BASE, steps=args.steps, threads=args.threads, seed=seed, **VARIANTS[name]
    )
    t0 = time.perf_counter()
    out = work / f"{name.replace(' ', '_')}{'' if seed == BASE.seed else f'_s{seed}'}.pt"
    if not args.score_only:
        train(config, work / "train", out, progress=report, overwrite=True)
    trained_s = time.perf_counter() - t0
    row = score(out, config, work / "test")
    if not args.score_only:
        row["train_s"] = trained_s
    print(f"{name}, seed {seed}: {json.dumps({k: round(v, 3) for k, v in row.items()})}")
    return row


def table(rows: dict[str, dict[str, Any]]) -> str:
    """The Markdown table: means over the training seeds, each F1's range after it."""

    def f1(r: dict[str, Any], key: str) -> str:
        seeds = r.get(f"{key}_seeds")
        spread = f" ({min(seeds):.3f}-{max(seeds):.3f})" if seeds else ""
        return f"{r[key]:.3f}{spread}"

    lines = [
        f"| training | F1 @ IoU 0.5 | F1, objects >= {MIN_SIZE} px | precision | recall | "
        "merges | splits | objects found / true |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {f1(r, 'f1')} | {f1(r, 'f1_min')} | {r['precision_min']:.3f} | "
            f"{r['recall_min']:.3f} | {r['merges_min']:.0f} | {r['splits_min']:.0f} | "
            f"{r['predicted_min']:.0f} / {r['objects']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Parse the options, draw the figure, run the experiment, print and save the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI size: 40 steps, 6 images")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--images", type=int, default=None)
    parser.add_argument("--test-images", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--seeds",
        type=lambda t: [int(x) for x in t.split(",")],
        default=[BASE.seed],
        help=f"training seeds, comma-separated; the table shows means [default: {BASE.seed}]",
    )
    parser.add_argument("--no-figure", action="store_true")
    parser.add_argument("--work", type=Path, default=None, help="keep data and models here")
    parser.add_argument(
        "--score-only", action="store_true", help="score the models already in --work"
    )
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help="comma-separated, from: " + ", ".join(VARIANTS),
    )
    args = parser.parse_args()
    quick = {"steps": 40, "images": 6, "test_images": 4}
    full = {"steps": BASE.steps, "images": 120, "test_images": 30}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if not args.no_figure:
        figure(FIGURE)
        print(f"wrote {FIGURE}")
    t0 = time.perf_counter()
    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
        rows = run(args, args.work)
    else:
        with tempfile.TemporaryDirectory(prefix="touching_cells_") as tmp:
            rows = run(args, Path(tmp))
    print(table(rows))
    for name, r in rows.items():
        if "f1_cores" in r:
            cores = r["f1_cores"]
            print(f"{name}, border not given back: F1 (objects >= {MIN_SIZE} px) {cores:.3f}")
    keys = ("steps", "images", "test_images", "threads", "variants", "seeds")
    setup = {k: getattr(args, k) for k in keys}
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({"setup": setup, "rows": rows}, indent=2) + "\n")
        print(f"wrote {RESULTS}")
    print(f"{(time.perf_counter() - t0) / 60:.1f} min")


if __name__ == "__main__":
    main()
