"""Soak test: many frames through ``Segmenter.stream`` and many threads on ``segment``.

A set of distinct frames is segmented serially first: those masks are the
reference. Then N frames (the set, cycled) go through ``Segmenter.stream``
(``drop="none"``, so every frame is processed), and M threads call
``Segmenter.segment`` on the same frames (a quarter as many calls, in two
halves), all on one Segmenter. Every mask is compared with the serial one.
Printed: resident memory (VmRSS) at start (model loaded and warm), after a
tenth of the stream and at its end, after each half of the threaded calls
(growth from the first half to the second would be a leak, the first half
itself adds each thread's buffers), the peak (VmHWM), mismatches and errors.
Exit status 1 if any mask differs or any call failed.

Frames are 256 x 256 uint16 crops of the ISBI 2012 slices (12-bit values) when
the data is beside the repository (../shared/data/isbi2012), else smooth
random images; the model is the shipped one unless --model says otherwise.

    python benchmarks/soak.py --frames 1000 --threads 4
"""

from __future__ import annotations

import argparse
import itertools
import sys
import threading
import time
from pathlib import Path

import numpy as np

ISBI = Path(__file__).resolve().parents[2] / "shared" / "data" / "isbi2012"


def rss_mb(field: str = "VmRSS") -> float:
    """This process's resident memory (or its peak, ``VmHWM``) in MB, from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def frames(count: int, size: int, isbi: Path = ISBI) -> tuple[list[np.ndarray], str]:
    """``count`` distinct uint16 (size, size) frames and where they come from."""
    rng = np.random.default_rng(0)
    slices = sorted((isbi / "train" / "image").glob("*.png")) if isbi.is_dir() else []
    out = []
    if slices:
        from unet_edge import io

        for i in range(count):
            img = io.read_image(slices[i % len(slices)])
            top, left = rng.integers(0, img.shape[0] - size, 2)
            out.append(img[top : top + size, left : left + size].astype(np.uint16) * 16)
        return out, f"ISBI 2012 crops, {size}x{size} uint16 (12-bit values)"
    import cv2

    for _ in range(count):
        noise = rng.random((size // 8, size // 8)).astype(np.float32)
        img = cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC)
        out.append((np.clip(img, 0, 1) * 4095).astype(np.uint16))
    return out, f"smooth random {size}x{size} uint16 (no ISBI data at {isbi})"


def stream_pass(seg: object, images: list[np.ndarray], refs: list[np.ndarray], n: int) -> dict:
    """N frames through ``stream``: mismatches, errors, frames and seconds."""
    source = (images[i % len(images)] for i in range(n))
    mismatches = errors = done = 0
    settled = float("nan")
    t0 = time.perf_counter()
    for i, r in enumerate(seg.stream(source, drop="none", max_queue=4)):  # type: ignore[attr-defined]
        done += 1
        if done == max(1, n // 10):
            settled = rss_mb()
        if r.error is not None:
            errors += 1
        elif not np.array_equal(r.mask, refs[i % len(refs)]):
            mismatches += 1
    return {
        "frames": done,
        "mismatches": mismatches,
        "errors": errors,
        "seconds": time.perf_counter() - t0,
        "settled": settled,
    }


def thread_pass(
    seg: object, images: list[np.ndarray], refs: list[np.ndarray], threads: int, calls: int
) -> dict:
    """``calls`` segment() calls shared by ``threads`` threads: mismatches and errors."""
    counter = itertools.count()
    lock = threading.Lock()
    tally = {"calls": 0, "mismatches": 0, "errors": 0}

    def work() -> None:
        while (i := next(counter)) < calls:
            k = i % len(images)
            try:
                same = np.array_equal(seg.segment(images[k]), refs[k])  # type: ignore[attr-defined]
                outcome = "ok" if same else "mismatches"
            except Exception:
                outcome = "errors"
            with lock:
                tally["calls"] += 1
                tally[outcome] = tally.get(outcome, 0) + 1

    t0 = time.perf_counter()
    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return {**tally, "threads": threads, "seconds": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=1000, help="frames through stream")
    ap.add_argument("--threads", type=int, default=4, help="threads calling segment")
    ap.add_argument(
        "--calls", type=int, default=None, help="segment() calls [default: a quarter of --frames]"
    )
    ap.add_argument("--distinct", type=int, default=16, help="distinct frames, cycled")
    ap.add_argument("--size", type=int, default=256, help="frame side")
    ap.add_argument("--model", default=None, help="ONNX model [default: the shipped one]")
    ap.add_argument("--isbi", type=Path, default=ISBI, help="ISBI 2012 folder for the frames")
    args = ap.parse_args(argv)

    from unet_edge import Segmenter

    images, source = frames(args.distinct, args.size, args.isbi)
    with Segmenter(args.model) as seg:
        t0 = time.perf_counter()
        refs = [seg.segment(f) for f in images]  # serial reference (and warm-up)
        per_frame = (time.perf_counter() - t0) / len(images)
        print(f"model    {seg.model_path.name}  provider {seg.provider}")
        print(f"frames   {source}; {args.distinct} distinct, cycled")
        print(f"serial   {per_frame * 1000:.0f} ms per frame")
        start = rss_mb()
        print(f"rss      start {start:.0f} MB (model loaded, warm)")
        s = stream_pass(seg, images, refs, args.frames)
        after_stream = rss_mb()
        print(
            f"stream   {s['frames']} frames in {s['seconds']:.0f} s, {s['mismatches']} "
            f"mismatches, {s['errors']} errors; rss {s['settled']:.0f} MB after a tenth, "
            f"{after_stream:.0f} MB at the end"
        )
        # two rounds: the first lets every thread's buffers settle, the second shows a leak
        calls = args.calls if args.calls is not None else max(2, args.frames // 4)
        rounds, rss_rounds = [], []
        for _ in range(2):
            rounds.append(thread_pass(seg, images, refs, args.threads, calls // 2))
            rss_rounds.append(rss_mb())
        t = {k: sum(r[k] for r in rounds) for k in ("calls", "mismatches", "errors", "seconds")}
        print(
            f"threads  {t['calls']} segment() calls on {args.threads} threads in "
            f"{t['seconds']:.0f} s, {t['mismatches']} mismatches, {t['errors']} errors; rss "
            f"{rss_rounds[0]:.0f} MB after the first half, {rss_rounds[1]:.0f} MB after the second"
        )
        end = rss_rounds[-1]
    print(
        f"rss      start {start:.0f} MB, after stream {after_stream:.0f} MB, end {end:.0f} MB "
        f"({end - start:+.0f} MB), peak {rss_mb('VmHWM'):.0f} MB"
    )
    bad = s["mismatches"] + s["errors"] + t["mismatches"] + t["errors"]
    print("result   " + ("OK" if bad == 0 else f"FAILED: {bad} bad results"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
