"""Simulate a camera: real ISBI frames as uint16 at a fixed frame rate, segmented live.

Each frame is stamped with the time it was due from the camera; latency is
counted from that moment to the moment its mask reaches this loop, so frames
that waited (in the camera or our queue) count their wait. Prints the
p50/p99 latency, how many frames were dropped, and how many pixels of each
streamed mask agree with the mask of the same slice as an 8-bit image (a
latency is only worth reporting for masks that are right).

    python examples/camera_sim.py --model tiny.onnx --fps 10 --frames 100
    python examples/camera_sim.py --model tiny.onnx --fps 30 --drop none   # falls behind
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from unet_edge import Segmenter, io

ISBI = Path(__file__).resolve().parents[2] / "shared" / "data" / "isbi2012"


def camera(frames: list[np.ndarray], n: int, fps: float) -> Iterator[tuple[np.ndarray, float]]:
    """Frame i is due at t0 + i/fps; a late reader gets it at once, stamped with its due time."""
    t0 = time.perf_counter()
    for i in range(n):
        due = t0 + i / fps
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        yield frames[i % len(frames)], due


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="ONNX model [default: the shipped one]")
    ap.add_argument("--fps", type=float, default=10.0)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--size", type=int, default=512, help="crop frames to SIZE x SIZE")
    ap.add_argument("--drop", default="oldest", choices=["oldest", "none"])
    ap.add_argument("--max-queue", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="ONNX Runtime CPU threads")
    ap.add_argument("--isbi", type=Path, default=ISBI)
    args = ap.parse_args()

    # 12-bit camera frames in uint16, as a microscope camera delivers them
    slices = [
        io.read_image(p)[: args.size, : args.size]
        for p in sorted((args.isbi / "train" / "image").glob("*.png"))[:8]
    ]
    frames = [s.astype(np.uint16) * 16 for s in slices]
    from unet_edge.engines.options import ProviderOptions

    with Segmenter(args.model, options=ProviderOptions(threads=args.threads)) as seg:
        seg.warmup(frames[0].shape)
        refs = [seg.segment(s) for s in slices]  # the 8-bit reference masks
        t = time.perf_counter()
        for f in frames[:4]:
            seg.segment(f)
        model_ms = (time.perf_counter() - t) / 4 * 1e3
        lat, agree, dropped, failed = [], [], 0, 0
        t0 = time.perf_counter()
        for r in seg.stream(camera(frames, args.frames, args.fps), max_queue=args.max_queue,
                            drop=args.drop, shape=frames[0].shape, timestamps=True):  # fmt: skip
            if r.dropped:
                dropped += 1
            elif r.error is not None:
                failed += 1
            else:
                assert r.latency is not None and r.mask is not None
                lat.append(r.latency * 1e3)
                agree.append(float((r.mask == refs[r.index % len(refs)]).mean()))
        wall = time.perf_counter() - t0
    p50, p99 = np.percentile(lat, [50, 99])
    print(f"{seg.info.name}: {frames[0].shape} uint16 frames at {args.fps:g} fps, "
          f"drop={args.drop}, max_queue={args.max_queue}")  # fmt: skip
    print(f"one frame alone (serial segment): {model_ms:.1f} ms")
    print(f"processed {len(lat)} of {args.frames} frames in {wall:.1f} s "
          f"({len(lat) / wall:.1f} fps); dropped {dropped}; failed {failed}")  # fmt: skip
    print(f"latency p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(lat):.1f} ms")
    print(f"masks vs the 8-bit reference: {100 * min(agree):.2f}% of pixels agree at worst, "
          f"{100 * float(np.mean(agree)):.2f}% on average")  # fmt: skip
    if min(agree) < 0.99:
        raise SystemExit("masks disagree with the 8-bit reference: the timings above are void")


if __name__ == "__main__":
    main()
