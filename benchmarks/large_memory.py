"""Peak memory of large-image segmentation: a SIZE x SIZE uint16 TIFF on disk, segmented tile by tile.

Writes the input (uncompressed, so it is memory-mapped window by window) to a
scratch folder, runs ``unet_edge.large.segment_large`` in a child process and
reports its peak resident memory (``ru_maxrss``), the wall time and the input
size. The big files are written to --workdir (default /tmp) and deleted after.

    python benchmarks/large_memory.py --model tiny.onnx --size 20000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

CHILD = """
import json, resource, sys, time
from unet_edge import Segmenter
from unet_edge.large import segment_large
model, src, dst = sys.argv[1:4]
t0 = time.perf_counter()
with Segmenter(model) as seg:
    plan = seg.plan_for(tuple(__import__('tifffile').TiffFile(src).series[0].shape))
    segment_large(seg, src, dst)
print(json.dumps({"seconds": time.perf_counter() - t0, "plan": repr(plan),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_input(path: Path, size: int) -> None:
    """A SIZE x SIZE uint16 image written band by band (never whole in memory)."""
    rng = np.random.default_rng(0)
    out = tifffile.memmap(path, shape=(size, size), dtype=np.uint16, photometric="minisblack")
    band = 1024
    for r in range(0, size, band):
        n = min(band, size - r)
        out[r : r + n] = rng.integers(0, 4096, (n, size), dtype=np.uint16)
        out.flush()
    del out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--size", type=int, default=20000)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        src, dst = Path(tmp) / "big.tif", Path(tmp) / "big_mask.tif"
        t0 = time.perf_counter()
        write_input(src, args.size)
        print(f"wrote {src} ({src.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - t0:.0f} s",
              file=sys.stderr)
        proc = subprocess.run([sys.executable, "-c", CHILD, args.model, str(src), str(dst)],
                              check=True, capture_output=True, text=True)
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        check = tifffile.TiffFile(dst)
        report.update(size=args.size, input_gb=src.stat().st_size / 1e9,
                      output_mb=dst.stat().st_size / 1e6,
                      output_shape=list(check.series[0].shape), output_tile=check.pages.first.tilelength)
        check.close()
    report["parent_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
