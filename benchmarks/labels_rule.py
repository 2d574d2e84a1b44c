"""What the model's labelling rule costs window by window (border class, watershed split),
and that it is exact.

A SIZE x SIZE three-class mask (0 background, 1 nucleus, 2 the border band where two
nuclei touch, as a model trained with ``--target three-class`` draws it) of seeded
random touching discs is labelled and measured window by window
(``unet_edge.paths.windowed.WindowObjects``, the code ``--large`` and ``--dask`` run,
windows of WINDOW px, labels TIFF and object table written) twice: as a two-class model
would (object class only) and with the border class given back (``border=(2,)``). Each is
timed, best of ``--repeat``; the ratio is the cost of the give-back. The same with the
watershed split (touching discs split apart), and with both. Each variant's labels are
then checked against ``label_classes(mask, (1,), split=..., border_classes=...)`` on
the whole mask in memory (``np.array_equal``), and its table against measuring those.

    python benchmarks/labels_rule.py               # 4096 x 4096, windows of 512
    python benchmarks/labels_rule.py --size 2048 --repeat 1
    python benchmarks/labels_rule.py --end-to-end 2048   # -m nuclei --large, split or not
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import tifffile

from unet_edge.objects.labels import label_classes
from unet_edge.objects.measure import measure_labels
from unet_edge.objects.table import write_csv
from unet_edge.paths.windowed import ObjectFiles, WindowObjects, output_windows


def touching_discs(size: int, seed: int = 0) -> np.ndarray:
    """A (size, size) uint8 three-class mask: discs 6-20 px in radius, many touching, the
    pixels where two discs meet (2 px wide bands) class 2, the rest of each disc class 1."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((size, size), np.int32)
    count = size * size // 900
    for i in range(1, count + 1):
        y, x = (int(v) for v in rng.integers(0, size, 2))
        cv2.circle(ids, (x, y), int(rng.integers(6, 21)), i, -1)
    grown = cv2.dilate(ids.astype(np.float32), np.ones((3, 3), np.uint8))
    shrunk = cv2.erode(np.where(ids > 0, ids, 1 << 30).astype(np.float32), np.ones((3, 3)))
    band = (ids > 0) & ((grown != ids) | ((shrunk != ids) & (shrunk < (1 << 30))))
    return np.where(band, 2, np.where(ids > 0, 1, 0)).astype(np.uint8)


VARIANTS = {  # name: (border classes given back, split)
    "object class only": ((), None),
    "border given back": ((2,), None),
    "watershed split": ((), "watershed"),
    "split and border": ((2,), "watershed"),
}


def run(mask: np.ndarray, window: int, variant: str, folder: Path) -> float:
    """Seconds to label and measure ``mask`` window by window and write both files."""
    h, w = mask.shape
    border, split = VARIANTS[variant]
    files = ObjectFiles(folder / f"{variant}.tif", folder / f"{variant}.csv", 0, split, {}, border)
    prob = np.ones((window, window), np.float32)
    start = time.perf_counter()
    found = WindowObjects((h, w), [1], files)
    for t, lf, hh, ww in output_windows((h, w), (window, window)):
        found.add((t, lf, hh, ww), mask[t : t + hh, lf : lf + ww], prob[:hh, :ww])
    found.write({}, None)
    return time.perf_counter() - start


def check(mask: np.ndarray, variant: str, folder: Path) -> dict[str, object]:
    """Whether the labels and table written for ``variant`` equal the whole mask's in memory."""
    border, split = VARIANTS[variant]
    want = label_classes(mask, (1,), split=split, border_classes=border)
    write_csv(folder / "want.csv", measure_labels(want, prob=np.ones(mask.shape, "f4")))
    rows = [list(csv.reader((folder / n).open(newline=""))) for n in (f"{variant}.csv", "want.csv")]
    got = tifffile.imread(folder / f"{variant}.tif")
    return {
        "objects": int(want.max()),
        "labels_equal": bool(np.array_equal(got, want)),
        "table_equal": rows[0] == rows[1],
    }


def end_to_end(size: int) -> dict[str, object]:
    """``segment_file(large=True)`` with ``-m nuclei`` on a generated SIZE x SIZE image of
    touching nuclei, labels and table, without and with the model's watershed split: the
    seconds of each run (segmentation included) and whether the split labels equal
    ``Segmenter.label`` in memory."""
    from unet_edge.paths.files import segment_file
    from unet_edge.runtime import Segmenter
    from unet_edge.training.synthetic import nuclei_image

    image, _ = nuclei_image(2024, (size, size))
    seg = Segmenter(model="nuclei")
    out: dict[str, object] = {"size": size}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        tifffile.imwrite(folder / "dapi.tif", image)
        for split in ("none", "watershed"):
            start = time.perf_counter()
            done = segment_file(
                seg,
                folder / "dapi.tif",
                folder / split,
                large=True,
                labels=True,
                measure=True,
                min_size="10px",
                split=split,
            )
            out[f"seconds_split_{split}"] = round(time.perf_counter() - start, 2)
            labels = tifffile.imread(done.outputs["labels"])
            out[f"objects_split_{split}"] = int(labels.max())
        out["split_labels_equal_in_memory"] = bool(np.array_equal(labels, seg.label(image)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--end-to-end", type=int, metavar="SIZE", help="-m nuclei runs instead")
    args = parser.parse_args()
    if args.end_to_end:
        print(json.dumps(end_to_end(args.end_to_end), indent=1))
        return
    mask = touching_discs(args.size)
    times: dict[str, list[float]] = {k: [] for k in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for _ in range(args.repeat):  # interleaved, so load on the machine hits all alike
            for variant in VARIANTS:
                times[variant].append(run(mask, args.window, variant, folder))
        checks = {v: check(mask, v, folder) for v in VARIANTS}
    base = min(times["object class only"])
    report = {
        "size": args.size,
        "window": args.window,
        "seconds_best": {k: round(min(v), 3) for k, v in times.items()},
        "ratio_to_object_class_only": {k: round(min(v) / base, 2) for k, v in times.items()},
        "equal_to_in_memory": checks,
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
