"""The domain guard of the shipped EM model: native EM images vs generated foreign ones, and
what scoring costs.

Native: ISBI slices the statistics were not computed on (train 20-24, test 00-29),
each in the 15 camera variants of the invariance table
(benchmarks/camera_invariance.py), crops and 2 x 2 mosaics. Foreign: images made
here, seeded (fluorescent nuclei, noise, smooth ramps, drawn shapes and text as a
photograph stand-in); no image shipped with another package.

    python benchmarks/domain_guard.py table [--data DIR]     # the scores of both sets
    python benchmarks/domain_guard.py timing [--size 2048]   # scoring vs inference time
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from unet_edge import Segmenter

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "isbi2012"
NATIVE_TRAIN = tuple(f"{i:02d}" for i in range(20, 25))
NATIVE_TEST = tuple(f"{i:02d}" for i in range(30))


def camera_invariance() -> ModuleType:
    """benchmarks/camera_invariance.py (its ``variants`` are the invariance table's)."""
    path = Path(__file__).resolve().parent / "camera_invariance.py"
    spec = importlib.util.spec_from_file_location("camera_invariance", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def native_images(
    data: Path = DATA, train: tuple[str, ...] = NATIVE_TRAIN, test: tuple[str, ...] = NATIVE_TEST
) -> Iterator[tuple[str, np.ndarray]]:
    """(label, image) of EM slices not used for the statistics: as they are, in the 15 camera
    variants that must keep their mask, cropped, and as 2 x 2 mosaics."""
    from unet_edge.io import read_image

    variants = camera_invariance().variants
    slices = [(f"train {n}", data / "train" / "image" / f"{n}.png") for n in train]
    slices += [(f"test {n}", data / "test" / "image" / f"{n}.png") for n in test]
    images = [(label, read_image(p)) for label, p in slices]
    for label, im in images:
        yield label, im
        for what, v, required in variants(im):
            if required:
                yield f"{label}, {what}", v
        yield f"{label}, crop 256", im[128:384, 128:384]
        yield f"{label}, crop 128 x 300", im[:128, 100:400]
    for i in range(0, len(images) - 3, 4):
        tiles = [im for _, im in images[i : i + 4]]
        mosaic = np.block([[tiles[0], tiles[1]], [tiles[2], tiles[3]]])
        yield f"mosaic of {', '.join(lab for lab, _ in images[i : i + 4])}", mosaic


def _poisson_camera(rng: np.random.Generator, photons: np.ndarray, bits: int) -> np.ndarray:
    counts = rng.poisson(np.clip(photons, 0, None)) + rng.normal(100, 3, photons.shape)
    return np.clip(counts, 0, 2**bits - 1).astype(np.uint16 if bits > 8 else np.uint8)


def fluorescence(
    rng: np.random.Generator,
    size: int = 512,
    n: int = 40,
    radius: float = 12.0,
    bright: float = 400.0,
    bits: int = 16,
) -> np.ndarray:
    """Fluorescent nuclei: blurred ellipses of varying brightness on a dark background, with
    shot and read noise (uint16, or uint8)."""
    img = np.zeros((size, size), np.float32)
    for _ in range(n):
        c = tuple(int(v) for v in rng.integers(0, size, 2))
        axes = tuple(int(radius * f) for f in rng.uniform(0.6, 1.4, 2))
        cv2.ellipse(
            img,
            c,
            axes,
            float(rng.uniform(0, 180)),
            0,
            360,
            float(bright * rng.uniform(0.5, 1.5)),
            -1,
        )
    img = cv2.GaussianBlur(img, (0, 0), 2.0) + 20.0
    return _poisson_camera(rng, img, bits)


def shapes(rng: np.random.Generator, size: int = 512, text: bool = True) -> np.ndarray:
    """A photograph stand-in: a lit background, filled shapes of many grey levels, text, a
    little blur and sensor noise (uint8)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    img = 60 + 80 * (xx / size) + 30 * np.sin(yy / size * 3)
    for _ in range(int(rng.integers(8, 20))):
        colour = float(rng.uniform(0, 255))
        p = rng.integers(0, size, 4)
        if rng.random() < 0.5:
            cv2.rectangle(img, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), colour, -1)
        else:
            cv2.circle(img, (int(p[0]), int(p[1])), int(p[2] // 4 + 5), colour, -1)
    if text:  # OpenCV draws text on 8-bit images only: draw it on a layer, then paste
        layer = np.zeros((size, size), np.uint8)
        for k in range(6):
            org = (int(rng.integers(0, size // 2)), int(rng.integers(30, size)))
            layer[:] = 0
            cv2.putText(
                layer,
                f"Sample {k} unet",
                org,
                cv2.FONT_HERSHEY_SIMPLEX,
                float(rng.uniform(0.6, 2.0)),
                255,
                2,
            )
            img[layer > 0] = float(rng.uniform(0, 255))
    img = cv2.GaussianBlur(img, (0, 0), 1.0) + rng.normal(0, 2, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def foreign_images(seed: int = 0) -> Iterator[tuple[str, np.ndarray]]:
    """(label, image) of generated images unlike EM, seeded."""
    rng = np.random.default_rng(seed)
    for n, r in ((15, 8.0), (40, 12.0), (120, 10.0), (25, 30.0), (300, 6.0)):
        yield f"fluorescence, {n} nuclei of radius {r:g}", fluorescence(rng, n=n, radius=r)
    yield "fluorescence, dim, 8-bit", fluorescence(rng, n=60, bright=60.0, bits=8)
    yield "fluorescence, 1024 px, 12-bit", fluorescence(rng, 1024, n=200, bits=12)
    yield "noise, uniform uint8", rng.integers(0, 256, (512, 512)).astype(np.uint8)
    yield "noise, gaussian float32", rng.normal(0, 1, (512, 512)).astype(np.float32)
    yield "noise, salt and pepper", (rng.random((512, 512)) < 0.1).astype(np.uint8) * 255
    yield (
        "noise, blurred (sigma 3)",
        cv2.GaussianBlur(rng.normal(0, 1, (512, 512)).astype(np.float32), (0, 0), 3.0),
    )
    yy, xx = np.mgrid[0:512, 0:512].astype(np.float32)
    yield "ramp, horizontal", (xx / 2).astype(np.uint8)
    yield "ramp, radial", (np.hypot(yy - 256, xx - 256) / 2.9).astype(np.uint8)
    yield "waves, sinusoid", (127 + 100 * np.sin(xx / 20) * np.cos(yy / 30)).astype(np.uint8)
    for k in range(4):
        yield f"shapes and text {k}", shapes(rng)
    yield "shapes, no text", shapes(rng, text=False)
    yield "constant", np.full((512, 512), 77, np.uint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("table", "timing"))
    ap.add_argument("--model", default=None, help="ONNX model [default: the shipped one]")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--size", type=int, default=2048)
    args = ap.parse_args()
    from unet_edge import Segmenter

    with Segmenter(args.model) as seg:
        if args.what == "timing":
            timing(seg, args.size)
        else:
            table(seg, args.data)


def _score(seg: Segmenter, image: np.ndarray) -> tuple[float, bool, str]:
    q = seg.analyze(image).quality
    assert q is not None, "the model has no domain statistics"
    return q[0].score, q[0].in_domain, q[0].reason


def table(seg: Segmenter, data: Path) -> None:
    """Print both sets' scores as Markdown, and the counts that matter."""
    rows = [("native", lab, *_score(seg, im)) for lab, im in native_images(data)]
    rows += [("foreign", lab, *_score(seg, im)) for lab, im in foreign_images()]
    native = [r for r in rows if r[0] == "native"]
    foreign = [r for r in rows if r[0] == "foreign"]
    print(
        f"native: {len(native)} images, score max {max(r[2] for r in native):.2f}, "
        f"median {float(np.median([r[2] for r in native])):.2f}, "
        f"false alarms {sum(not r[3] for r in native)}"
    )
    print(
        f"foreign: {len(foreign)} images, score min {min(r[2] for r in foreign):.2f}, "
        f"missed {sum(r[3] for r in foreign)}"
    )
    print("| set | image | score | in domain | reason |")
    print("| --- | --- | --- | --- | --- |")
    worst = sorted(native, key=lambda r: -r[2])[:10]
    for r in worst + foreign:
        print(f"| {r[0]} | {r[1]} | {r[2]:.2f} | {'yes' if r[3] else 'no'} | {r[4]} |")


def timing(seg: Segmenter, size: int) -> None:
    """Time analyze on a size x size EM mosaic, and the scoring alone on its output."""
    from unet_edge.io import read_image

    im = read_image(DATA / "train" / "image" / "20.png")
    big = np.tile(im, (size // im.shape[0] + 1, size // im.shape[1] + 1))[:size, :size]
    pred = seg.analyze(big)  # warm up, and the output to score
    t0 = time.perf_counter()
    seg.analyze(big)
    run = time.perf_counter() - t0
    guard = seg.guard
    assert guard is not None, "the model has no domain statistics"
    scaling = seg.scaling_for(big)
    reps = 20
    t0 = time.perf_counter()
    for _ in range(reps):
        guard.assess(big, scaling, pred.probabilities)
    score = (time.perf_counter() - t0) / reps
    print(
        f"{size} x {size}: analyze {run:.3f} s (scoring included), scoring "
        f"{1000 * score:.1f} ms = {100 * score / run:.2f}% of the run"
    )


if __name__ == "__main__":
    main()
