"""Issue 19's end-to-end check: `unet-edge run MOSAIC.tif --labels --measure --rois` on a
2560 x 2560 12-bit calibrated mosaic of ISBI slices, in memory, with `--large` and with
`--dask local:2`, each checked against the mask it wrote.

For every run: the labels equal the 4-connected components of the mask's `cell` pixels
(up to renumbering: the same partition), the CSV's areas equal each label's pixel count
times the pixel area, and (in memory) roifile reads one ROI per object. The three runs'
labels and tables must also equal each other. Prints one JSON report.

    python benchmarks/objects_cli.py            # about 2 minutes on 2 cores
    python benchmarks/objects_cli.py --size 1024 --skip-dask
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import tifffile

ISBI = Path(__file__).resolve().parents[2] / "shared" / "data" / "isbi2012"
PIXEL_UM = 0.004  # the ISBI slices' 4 nm pixels


def write_mosaic(path: Path, size: int, isbi: Path) -> None:
    """A size x size uint16 mosaic of ISBI training slices, scaled to 12 bits, calibrated."""
    slices = [
        cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        for p in sorted((isbi / "train" / "image").glob("*.png"))
    ]
    if not slices:
        sys.exit(f"no ISBI slices under {isbi}/train/image")
    n = -(-size // slices[0].shape[0])
    rows = [np.hstack([slices[(r * n + c) % len(slices)] for c in range(n)]) for r in range(n)]
    image = np.vstack(rows)[:size, :size].astype(np.uint16) * 16  # 8 -> 12 bits
    res = 1.0 / PIXEL_UM  # pixels per micrometre
    tifffile.imwrite(path, image, imagej=True, resolution=(res, res), metadata={"unit": "micron"})


def run(src: Path, out: Path, *extra: str) -> float:
    cmd = [
        sys.executable,
        "-m",
        "unet_edge.cli",
        "run",
        str(src),
        "-o",
        str(out),
        "--labels",
        "--measure",
        *extra,
    ]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
    return time.perf_counter() - t


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two label images hold the same objects, whatever their numbers."""
    if not np.array_equal(a > 0, b > 0):
        return False
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]), axis=1)
    return len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1]))


def check(out: Path, stem: str, rois: bool) -> dict[str, Any]:
    labels = tifffile.imread(out / f"{stem}_labels.tif")
    mask = tifffile.imread(out / f"{stem}_mask.tif")
    cell = mask == mask.max()  # the mask is 0/255: 255 is `cell`, the object class
    _, components = cv2.connectedComponents(cell.astype(np.uint8), connectivity=4)
    with open(out / f"{stem}_objects.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    counts = np.bincount(labels.ravel())
    areas = np.array([float(r["area_um2"]) for r in rows])
    ids = np.array([int(r["label"]) for r in rows])
    report = {
        "objects": int(labels.max()),
        "labels_equal_mask_components": same_partition(labels, components),
        "csv_rows": len(rows),
        "csv_area_equals_count_x_pixel_area": bool(
            np.allclose(areas, counts[ids] * PIXEL_UM**2, rtol=1e-6)
        ),
    }
    if rois:
        import roifile

        report["rois"] = len(roifile.roiread(out / f"{stem}_rois.zip"))
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2560)
    ap.add_argument("--isbi", type=Path, default=ISBI)
    ap.add_argument("--skip-dask", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "mosaic.tif"
        write_mosaic(src, args.size, args.isbi)
        runs = {"in_memory": ("--rois",), "large": ("--large",)}
        if not args.skip_dask:
            runs["dask_local_2"] = ("--dask", "local:2")
        report: dict[str, Any] = {"size": args.size}
        for name, extra in runs.items():
            out = Path(tmp) / name
            seconds = run(src, out, *extra)
            report[name] = {"seconds": round(seconds, 1), **check(out, "mosaic", "--rois" in extra)}
        first = Path(tmp) / "in_memory"
        for name in list(runs)[1:]:
            other = Path(tmp) / name
            report[name]["labels_equal_in_memory"] = bool(
                np.array_equal(
                    tifffile.imread(first / "mosaic_labels.tif"),
                    tifffile.imread(other / "mosaic_labels.tif"),
                )
            )
            report[name]["csv_equal_in_memory"] = (first / "mosaic_objects.csv").read_text() == (
                other / "mosaic_objects.csv"
            ).read_text()
    print(json.dumps(report, indent=2))
    ok = all(
        v
        for r in report.values()
        if isinstance(r, dict)
        for k, v in r.items()
        if k.endswith(("equal_mask_components", "pixel_area", "in_memory"))
    )
    rois_ok = report["in_memory"]["rois"] == report["in_memory"]["objects"]
    sys.exit(0 if ok and rois_ok else "a check failed")


if __name__ == "__main__":
    main()
