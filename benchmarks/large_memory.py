"""Peak memory of large-image segmentation: a SIZE x SIZE uint16 TIFF on disk, band by band.

Writes the input (uncompressed, so it is memory-mapped window by window) to a
scratch folder, runs ``unet_edge.paths.windowed.segment_large`` in a child process and
reports its peak resident memory (VmHWM), the wall time and the input
size, and how many pixels of the mask agree with the in-memory mask of the
same ISBI content as 8-bit (a centre period of a 3x3 mosaic): the figures are
only worth what the mask they were measured on is worth. The big files are
written to --workdir (default /tmp) and deleted after.

    python benchmarks/large_memory.py --model tiny.onnx --size 20000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

CHILD = """  # noqa: E501
import json, resource, sys, time
from unet_edge import Segmenter
from unet_edge.paths.windowed import segment_large
model, src, dst, budget = sys.argv[1:5]
model = model or None
t0 = time.perf_counter()
with Segmenter(model, memory_budget=int(budget)) as seg:
    plan = seg.plan_for(tuple(__import__('tifffile').TiffFile(src).series[0].shape))
    segment_large(seg, src, dst)
# VmHWM is this process's own peak RSS (ru_maxrss would inherit the parent's across fork)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(json.dumps({"seconds": time.perf_counter() - t0, "plan": repr(plan),
                  "peak_rss_mb": int(hwm) / 1024}))
"""


def period(isbi: Path) -> np.ndarray:
    """The mosaic's repeating 1024 x 1024 block of four ISBI slices, 8-bit."""
    import cv2

    frames = [cv2.imread(str(isbi / "train" / "image" / f"{i:02d}.png"), 0) for i in range(4)]
    return np.vstack([np.hstack(frames[:2]), np.hstack(frames[2:])])


def reference(model: str, isbi: Path) -> np.ndarray:
    """The 8-bit in-memory mask of one period, seen inside its periodic neighbours."""
    from unet_edge import Segmenter, processing

    block = period(isbi)
    with Segmenter(model) as seg:
        mask = seg.segment(np.tile(block, (3, 3)))
    n = block.shape[0]
    return processing.mask_to_image(mask[n : 2 * n, n : 2 * n], seg.info.classes)


def write_input(path: Path, size: int, isbi: Path) -> None:
    """A SIZE x SIZE uint16 mosaic of ISBI frames (12-bit range), written band by band."""
    tile = period(isbi).astype(np.uint16) * 16
    out = tifffile.memmap(path, shape=(size, size), dtype=np.uint16, photometric="minisblack")
    band = tile.shape[0]
    row = np.tile(tile, (1, -(-size // tile.shape[1])))[:, :size]
    for r in range(0, size, band):
        n = min(band, size - r)
        out[r : r + n] = row[:n]
        out.flush()
    del out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="ONNX model [default: the shipped one]")
    ap.add_argument("--size", type=int, default=20000)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp"))
    ap.add_argument(
        "--memory-budget",
        type=int,
        default=256,
        help="activation-memory estimate for the tile choice, MiB (as `unet-edge run --large`)",
    )
    ap.add_argument(
        "--isbi",
        type=Path,
        default=Path(__file__).resolve().parents[2] / "shared" / "data" / "isbi2012",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        src, dst = Path(tmp) / "big.tif", Path(tmp) / "big_mask.tif"
        t0 = time.perf_counter()
        write_input(src, args.size, args.isbi)
        gb = src.stat().st_size / 1e9
        print(f"wrote {src} ({gb:.2f} GB) in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                CHILD,
                args.model or "",
                str(src),
                str(dst),
                str(args.memory_budget << 20),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        check = tifffile.TiffFile(dst)
        ref = reference(args.model, args.isbi)
        n = ref.shape[0]
        got = check.asarray(out="memmap")[n : 2 * n, n : 2 * n] if args.size >= 2 * n else None
        report.update(
            agreement_with_8bit=None if got is None else float((got == ref).mean()),
            size=args.size,
            input_gb=src.stat().st_size / 1e9,
            output_mb=dst.stat().st_size / 1e6,
            output_shape=list(check.series[0].shape),
            output_striped=not check.pages.first.is_tiled,
            output_rows_per_strip=check.pages.first.rowsperstrip,
        )
        check.close()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
