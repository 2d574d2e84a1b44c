"""Instance labels at any size: their cost next to segmentation, and flat memory window by window.

Part 1, in memory: a 4096 x 4096 mosaic of ISBI 2012 slices is segmented with
the shipped model (``Segmenter.analyze``), then labelled (``objects.labels.label``)
and measured (``ObjectSums``: area, centroid, box, perimeter, mean probability
and intensity); each step timed, best of ``--repeat``. Issue 19's target: labelling
and measuring <= 10% of segmentation.

Part 2, window by window: a SIZE x SIZE uint16 TIFF (the mosaic tiled) is
segmented by ``segment_large`` in a child process twice, once for the mask only
and once with the labels and the object table (``ObjectFiles``): the wall time
and the peak resident memory (VmHWM) of each, and the time spent inside the
objects' code (``WindowObjects.add``/``write``), whose share of the rest of the
same run is robust to other load on the machine. The labels are then checked
against labelling the written mask in memory: the whole image when it is at
most ``--check-whole`` pixels a side, else a ``--region`` square in the middle
(each object inside it must be one object there too: the same partition).

    python benchmarks/labels.py                      # 4096 in memory, 6144 windowed
    python benchmarks/labels.py --size 20000 --skip-in-memory
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from objects_share import best  # benchmarks/: best of N timings, as the in-memory share does

ISBI = Path(__file__).resolve().parents[2] / "shared" / "data" / "isbi2012"

CHILD = """
import json, sys, time
from pathlib import Path
from unet_edge import Segmenter
from unet_edge.paths import windowed
model, src, out, labels = sys.argv[1:5]
files = windowed.ObjectFiles(Path(out) / "labels.tif", Path(out) / "objects.csv")
spent = [0.0]  # seconds inside the objects' code: robust to the machine's other load
def timed(f):
    def run(*a, **k):
        t = time.perf_counter()
        try:
            return f(*a, **k)
        finally:
            spent[0] += time.perf_counter() - t
    return run
windowed.WindowObjects.add = timed(windowed.WindowObjects.add)
windowed.WindowObjects.write = timed(windowed.WindowObjects.write)
files = files if labels == "1" else None
t0 = time.perf_counter()
with Segmenter(model or None) as seg:
    windowed.segment_large(seg, src, Path(out) / "mask.tif", objects=files)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(json.dumps({"seconds": time.perf_counter() - t0, "objects_seconds": spent[0],
                  "peak_rss_mb": int(hwm) / 1024}))
"""


def period(isbi: Path) -> np.ndarray:
    """2048 x 2048 uint16 (12-bit range): ISBI training slices 0-15 tiled 4 x 4."""
    from unet_edge import io

    frames = [io.read_image(isbi / "train" / "image" / f"{i:02d}.png") for i in range(16)]
    block = np.vstack([np.hstack(frames[r * 4 : r * 4 + 4]) for r in range(4)])
    return block.astype(np.uint16) * 16


def mosaic(block: np.ndarray, size: int) -> np.ndarray:
    reps = -(-size // block.shape[0])
    return np.tile(block, (reps, reps))[:size, :size]


def in_memory(model: str | None, block: np.ndarray, size: int, repeat: int) -> dict[str, Any]:
    """Part 1: segmentation, labelling and measuring times of a SIZE x SIZE mosaic."""
    from unet_edge import Segmenter
    from unet_edge.objects.labels import label, object_mask
    from unet_edge.objects.measure import ObjectSums

    image = mosaic(block, size)
    with Segmenter(model) as seg:
        t_seg, pred = best(lambda: seg.analyze(image), 1)
        classes = list(seg.info.object_classes)
    objects = object_mask(pred.mask, classes)
    t_label, labels = best(lambda: label(objects), repeat)
    prob = pred.probabilities[classes].sum(0)
    t_measure, sums = best(lambda: ObjectSums().add(labels, prob=prob, raw=image), repeat)
    table = sums.table()
    return {
        "size": size,
        "objects": int(labels.max()),
        "segment_s": round(t_seg, 3),
        "label_s": round(t_label, 3),
        "measure_s": round(t_measure, 3),
        "share": round((t_label + t_measure) / t_seg, 4),
        "table_rows": len(table),
    }


def write_input(path: Path, block: np.ndarray, size: int) -> None:
    """The SIZE x SIZE mosaic, uncompressed, written band by band (never whole in memory)."""
    out = tifffile.memmap(path, shape=(size, size), dtype=np.uint16, photometric="minisblack")
    row = np.tile(block, (1, -(-size // block.shape[1])))[:, :size]
    for r in range(0, size, block.shape[0]):
        n = min(block.shape[0], size - r)
        out[r : r + n] = row[:n]
        out.flush()
    del out


def child(model: str | None, src: Path, out: Path, labels: bool) -> dict[str, Any]:
    out.mkdir()
    args = [sys.executable, "-c", CHILD, model or "", str(src), str(out), "1" if labels else "0"]
    proc = subprocess.run(args, check=True, capture_output=True, text=True)
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def check_labels(out: Path, size: int, whole: int, region: int) -> dict[str, Any]:
    """The written labels against labelling the written mask in memory."""
    from unet_edge.objects.labels import label

    if size <= whole:
        mask = tifffile.imread(out / "mask.tif") > 0  # the shipped model: 255 = cell
        got = tifffile.imread(out / "labels.tif")
        return {"checked": "whole image", "equal": bool(np.array_equal(got, label(mask)))}
    r0 = (size - region) // 2
    mask = _square(out / "mask.tif", r0, region) > 0
    got = _square(out / "labels.tif", r0, region)
    ref = label(mask)
    inside = ref.copy()
    border = np.unique(np.concatenate([ref[0], ref[-1], ref[:, 0], ref[:, -1]]))
    inside[np.isin(ref, border)] = 0
    pairs = np.unique(np.stack([inside[inside > 0], got[inside > 0]]), axis=1)
    ids_in = np.unique(pairs[1])
    same = pairs.shape[1] == len(np.unique(pairs[0])) == len(ids_in)
    # and no pixel outside an interior object carries its id
    alone = not np.isin(got[(inside == 0)], ids_in).any()
    return {"checked": f"{region}x{region} at ({r0}, {r0})", "equal": bool(same and alone)}


def _square(path: Path, r0: int, n: int) -> np.ndarray:
    """Rows and columns ``r0 .. r0 + n`` of a striped TIFF, decoding only the strips they
    need (through tifffile's zarr store)."""
    import zarr

    with tifffile.TiffFile(path) as tf:
        z = zarr.open(tf.aszarr(), mode="r")
        return np.asarray(z[r0 : r0 + n, r0 : r0 + n])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="ONNX model [default: the shipped one]")
    ap.add_argument("--in-memory-size", type=int, default=4096)
    ap.add_argument("--size", type=int, default=6144, help="side of the windowed run's image")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-in-memory", action="store_true")
    ap.add_argument("--check-whole", type=int, default=8192)
    ap.add_argument("--region", type=int, default=4096)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    ap.add_argument("--isbi", type=Path, default=ISBI)
    ap.add_argument("--out", type=Path, help="also write the JSON report here")
    args = ap.parse_args()
    block = period(args.isbi)
    report: dict[str, Any] = {"machine": platform.processor() or platform.machine()}
    if not args.skip_in_memory:
        report["in_memory"] = in_memory(args.model, block, args.in_memory_size, args.repeat)
        print(json.dumps(report["in_memory"]), file=sys.stderr)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        src = Path(tmp) / "big.tif"
        write_input(src, block, args.size)
        runs = {
            name: child(args.model, src, Path(tmp) / name, labels)
            for name, labels in (("mask_only", False), ("with_labels", True))
        }
        mask_s, labels_s = runs["mask_only"]["seconds"], runs["with_labels"]["seconds"]
        out = Path(tmp) / "with_labels"
        report["windowed"] = {
            "size": args.size,
            **runs,
            "labels_share": round((labels_s - mask_s) / mask_s, 4),
            # the same, from the time inside the objects' code of the run with labels
            "labels_share_inside": round(
                runs["with_labels"]["objects_seconds"]
                / (labels_s - runs["with_labels"]["objects_seconds"]),
                4,
            ),
            "objects": sum(1 for _ in (out / "objects.csv").open()) - 1,
            "check": check_labels(out, args.size, args.check_whole, args.region),
        }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
