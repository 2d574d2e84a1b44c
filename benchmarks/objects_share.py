"""Labelling and measuring as a share of segmentation time (issue 19's target: <= 10%).

A SIZE x SIZE mosaic of ISBI 2012 slices (16 of them, tiled) is segmented
with the shipped model (``Segmenter.analyze``), then its objects are labelled
(``objects.label_classes``), measured (``objects.measure_labels``: area,
centroid, box, perimeter, mean probability and intensity) and outlined (the
ROI set and the GeoJSON, built in memory). Each step is timed on its own,
best of ``--repeat``; the segmentation once. Prints JSON, and writes it to
``--out`` if given.

    python benchmarks/objects_share.py --size 4096 --out benchmarks/results/objects_share.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from unet_edge import Segmenter, io
from unet_edge.objects.geojson import feature_collection
from unet_edge.objects.labels import label_classes
from unet_edge.objects.measure import measure_labels
from unet_edge.objects.rois import rois_of, zip_bytes

ISBI = Path(__file__).resolve().parents[2] / "shared" / "data" / "isbi2012"


def mosaic(size: int) -> np.ndarray:
    """SIZE x SIZE uint8: ISBI training slices 0-15 tiled, repeated as needed."""
    frames = [io.read_image(ISBI / "train" / "image" / f"{i:02d}.png") for i in range(16)]
    rows = [np.hstack(frames[r * 4 : r * 4 + 4]) for r in range(4)]
    block = np.vstack(rows)  # 2048 x 2048
    reps = -(-size // block.shape[0])
    return np.tile(block, (reps, reps))[:size, :size]


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    image = mosaic(args.size)
    with Segmenter() as seg:
        t0 = time.perf_counter()
        pred = seg.analyze(image)
        segment_s = time.perf_counter() - t0
        classes = seg.info.object_classes
    mask = pred.mask
    prob = pred.probabilities[list(classes)].sum(axis=0)
    label_s, labels = best(lambda: label_classes(mask, classes), args.repeat)
    measure_s, table = best(lambda: measure_labels(labels, prob=prob, raw=image), args.repeat)
    rois_s, _ = best(lambda: zip_bytes(rois_of(labels)), 1)
    geojson_s, _ = best(lambda: feature_collection(labels, table), 1)
    result = {
        "size": args.size,
        "objects": int(labels.max()),
        "segment_s": round(segment_s, 3),
        "label_s": round(label_s, 3),
        "measure_s": round(measure_s, 3),
        "rois_s": round(rois_s, 3),
        "geojson_s": round(geojson_s, 3),
        "label_and_measure_share": round((label_s + measure_s) / segment_s, 4),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "command": f"python benchmarks/objects_share.py --size {args.size}",
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
