"""Any camera, same mask: how many pixels keep their class when a slice arrives differently.

Each ISBI slice (8-bit) is also given as 12- and 14-bit values in uint16, full-range
uint16, float32 in 0..1 and 0..255, and with camera gains and offsets (clipped to
the dtype, as a camera saturates); the table is the share of pixels whose class
equals the 8-bit mask, worst and mean over the slices, plus the segmentation
quality of the 8-bit masks.

    python benchmarks/camera_invariance.py [--model M.onnx] [--data DIR] [--names 20-24]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from unet_edge import InputError, Segmenter
from unet_edge.datasets import parse_names
from unet_edge.evaluate import mean_metrics, read_label, segmentation_metrics
from unet_edge.io import read_image

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "isbi2012" / "train"


#: Inputs whose masks must agree with the 8-bit mask on >= 99% of the pixels
#: (tests/test_camera.py checks every variant but the last, which saturates more).
GAINS = (0.5, 0.7, 0.75, 1.25, 1.3, 1.5)
OFFSETS = (-30, -15, 15, 30)


def variants(im: np.ndarray) -> Iterator[tuple[str, np.ndarray, bool]]:
    """(label, the slice as cameras and pipelines deliver it, whether 99% is required)."""
    f = im.astype(np.float64)
    yield "uint16, 12-bit values (x16)", im.astype(np.uint16) * 16, True
    yield "uint16, 14-bit values (x64)", im.astype(np.uint16) * 64, True
    yield "uint16, full range (x257)", im.astype(np.uint16) * 257, True
    yield "float32 in 0..1", (f / 255).astype(np.float32), True
    yield "float32 in 0..255", f.astype(np.float32), True
    for gain in GAINS:
        yield f"uint8, gain {gain}", np.clip(np.round(f * gain), 0, 255).astype(np.uint8), True
    for offset in OFFSETS:
        yield f"uint8, offset {offset:+d}", np.clip(f + offset, 0, 255).astype(np.uint8), True
    both = np.clip(np.round(f * 1.5 + 30), 0, 255).astype(np.uint8)
    yield "uint8, gain 1.5 and offset +30 (not required)", both, False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="ONNX model [default: the shipped one]")
    ap.add_argument("--data", type=Path, default=DATA, help="folder with image/ and label/")
    ap.add_argument("--names", default="20-24")
    args = ap.parse_args()
    agree: dict[str, list[float]] = {}
    scores = []
    with Segmenter(args.model) as seg:
        for name in parse_names(args.names):
            im = read_image(args.data / "image" / f"{name}.png")
            ref = seg.segment(im)
            scores.append(
                segmentation_metrics(ref, read_label(args.data / "label" / f"{name}.png"))
            )
            for label, v, _ in variants(im):
                try:
                    a = float((seg.segment(v) == ref).mean())
                except InputError:  # a fixed-range model refuses what it cannot scale
                    a = float("nan")
                agree.setdefault(label, []).append(a)
    print(f"model {seg.info.name}, normalisation {seg.info.normalization.to_dict()}")
    print("| input | pixels with the 8-bit class: worst slice | mean |")
    print("| --- | --- | --- |")
    for label, a in agree.items():
        print(f"| {label} | {100 * min(a):.2f}% | {100 * float(np.mean(a)):.2f}% |")
    quality = {k: round(v, 4) for k, v in mean_metrics(scores).items()}
    print("8-bit masks:", json.dumps(quality))


if __name__ == "__main__":
    main()
