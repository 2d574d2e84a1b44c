"""How a nuclei model's mask becomes nuclei: connected regions vs minimum size vs watershed split.

    python benchmarks/nuclei_labelling.py                  # the shipped -m nuclei (about 1 min)
    python benchmarks/nuclei_labelling.py --model M.onnx   # another model
    python benchmarks/nuclei_labelling.py --quick          # 8 images (CI size)

Generates a *validation* folder of touching-nuclei images with instance ground
truth (:func:`unet_edge.training.synthetic.write_folder`, seed 777: neither the
nuclei model's training images, seed 21, nor the held-out images of its
metrics, seed 2021), runs the model once per image and labels its mask four
ways:

1. ``connected regions``: 4-connected regions of the nucleus class (what
   ``label()`` gives a model without a stated rule);
2. ``+ min 10 px``: regions under 10 px removed (noise specks; the smallest
   generated nucleus is about 50 px);
3. ``+ watershed``: touching nuclei split (:mod:`unet_edge.objects.split`);
4. ``+ min 10 px + watershed``: both, the rule the shipped nuclei model states
   in its metadata (``output.labelling``), so ``run -m nuclei --labels`` and
   ``Segmenter(model="nuclei").label`` use it unless told otherwise.

Each labelling is scored against the truth by
:func:`unet_edge.evaluate.instance_metrics` (F1 at IoU 0.5, merges, splits,
pooled over the images) and timed (labelling only; the model runs once per
image). This set chose the split rule's constants (``SIGMA_PX``, ``H_MIN_PX``,
``H_FRACTION`` in :mod:`unet_edge.objects.split`) and the 10 px: its figures
are validation figures, not held-out ones (``export/nuclei/metrics.json`` are).
Prints a Markdown table and writes ``benchmarks/results/nuclei_labelling.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from unet_edge import Segmenter
from unet_edge.datasets import split_folder
from unet_edge.evaluate import find_pairs, instance_metrics, pooled_instance_metrics, read_array
from unet_edge.objects.labels import label, object_mask
from unet_edge.training.synthetic import write_folder

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "nuclei_labelling.json"
SEED, IMAGES = 777, 40
WAYS: dict[str, dict[str, Any]] = {
    "connected regions": {},
    "+ min 10 px": {"min_size": 10},
    "+ watershed": {"split": "watershed"},
    "+ min 10 px + watershed": {"min_size": 10, "split": "watershed"},
}


def measure(model: str, folder: Path) -> dict[str, dict[str, float]]:
    """Pooled instance scores and labelling time of each of :data:`WAYS` on ``folder``."""
    seg = Segmenter(model=model)
    masks, truths = [], []
    for _, image_path, label_path in find_pairs(*split_folder(folder)):
        masks.append(object_mask(seg.segment(read_array(image_path)), seg.info.object_classes))
        truths.append(read_array(label_path))
    out: dict[str, dict[str, float]] = {}
    for name, how in WAYS.items():
        t0 = time.perf_counter()
        labels = [label(m, **how) for m in masks]
        seconds = time.perf_counter() - t0
        scores = pooled_instance_metrics(
            [instance_metrics(a, t) for a, t in zip(labels, truths, strict=True)]
        )
        out[name] = {**scores, "ms_per_image": 1000 * seconds / len(masks)}
    return out


def table(results: dict[str, dict[str, float]]) -> str:
    """The Markdown table of :func:`measure`'s results."""
    rows = [
        "| labelling | F1 @ IoU 0.5 | precision | recall | merges | splits | ms / image |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in results.items():
        rows.append(
            f"| {name} | {r['f1']:.3f} | {r['precision']:.3f} | {r['recall']:.3f} | "
            f"{r['merges']:.0f} | {r['splits']:.0f} | {r['ms_per_image']:.1f} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="nuclei", help="a shipped name or an .onnx path")
    parser.add_argument("--quick", action="store_true", help="8 images, results not written")
    args = parser.parse_args()
    count = 8 if args.quick else IMAGES
    with tempfile.TemporaryDirectory() as tmp:
        write_folder(tmp, count, SEED)
        results = measure(args.model, Path(tmp))
    print(f"{args.model}: {count} generated validation images (seed {SEED}, 256 x 256)\n")
    print(table(results))
    if not args.quick:
        RESULTS.parent.mkdir(exist_ok=True)
        record = {"model": args.model, "seed": SEED, "images": count, "results": results}
        RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    best = results["+ min 10 px + watershed"]["f1"]
    if not best > results["connected regions"]["f1"]:  # the rule the model states must pay
        raise SystemExit(f"the stated labelling rule did not beat connected regions ({best:.3f})")


if __name__ == "__main__":
    main()
