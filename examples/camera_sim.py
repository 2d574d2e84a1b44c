"""Simulate a camera: real ISBI frames as uint16 at a fixed frame rate, segmented live.

Each frame is stamped with the time it was due from the camera; latency is
counted from that moment to the moment its mask reaches this loop, so frames
that waited (in the camera or our queue) count their wait. Prints the
p50/p99 latency and how many frames were dropped.

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
    frames = [
        io.read_image(p)[: args.size, : args.size].astype(np.uint16) * 16
        for p in sorted((args.isbi / "train" / "image").glob("*.png"))[:8]
    ]
    from unet_edge.providers import ProviderOptions

    with Segmenter(args.model, options=ProviderOptions(threads=args.threads)) as seg:
        seg.warmup(frames[0].shape)
        t = time.perf_counter()
        for f in frames[:4]:
            seg.segment(f)
        model_ms = (time.perf_counter() - t) / 4 * 1e3
        lat, dropped, failed = [], 0, 0
        t0 = time.perf_counter()
        for r in seg.stream(camera(frames, args.frames, args.fps), max_queue=args.max_queue,
                            drop=args.drop, shape=frames[0].shape, timestamps=True):  # fmt: skip
            if r.dropped:
                dropped += 1
            elif r.error is not None:
                failed += 1
            else:
                assert r.latency is not None
                lat.append(r.latency * 1e3)
        wall = time.perf_counter() - t0
    p50, p99 = np.percentile(lat, [50, 99])
    print(f"{seg.info.name}: {frames[0].shape} uint16 frames at {args.fps:g} fps, "
          f"drop={args.drop}, max_queue={args.max_queue}")  # fmt: skip
    print(f"one frame alone (serial segment): {model_ms:.1f} ms")
    print(f"processed {len(lat)} of {args.frames} frames in {wall:.1f} s "
          f"({len(lat) / wall:.1f} fps); dropped {dropped}; failed {failed}")  # fmt: skip
    print(f"latency p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(lat):.1f} ms")


if __name__ == "__main__":
    main()
