"""What one channel of a multi-channel TIFF needs in memory: the estimate that decides between
in memory and window by window (every channel vs the one picked), and the measured peak.

Writes a 4-channel 2048 x 2048 uint16 ImageJ composite (``CYX``; 16 ISBI training slice
tiles, 12-bit), then segments channel 1 of it in memory with ``segment_file`` and a memory
limit just above the picked channel's estimate (below every channel's, which before sent
it window by window), and reports the estimates and the peak Python and numpy held
(tracemalloc; ONNX Runtime's own tile buffers are not counted). The model is a tiny
random U-Net (width 2): the memory is the image's, not the network's.

    python benchmarks/channel_memory.py [ISBI_FOLDER]
"""

from __future__ import annotations

import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import tifffile

from unet_edge import Segmenter, io
from unet_edge.paths import files

ISBI = Path(__file__).resolve().parents[2] / "shared" / "data" / "isbi2012"
TESTS = Path(__file__).resolve().parents[1] / "tests"


def main(isbi: Path = ISBI) -> None:
    sys.path.insert(0, str(TESTS))
    import onnx_models  # the tests' tiny random U-Nets

    from unet_edge.config import UNetConfig

    folder = Path(tempfile.mkdtemp())
    seg = Segmenter(onnx_models.save(folder / "tiny.onnx", UNetConfig(base_width=2)))
    em = io.read_image(isbi / "train" / "image" / "20.png").astype(np.uint16) * 16
    plane = np.tile(em, (4, 4))  # 2048 x 2048
    channels = np.stack([plane, plane // 2, plane[::-1], plane[:, ::-1]])
    src = folder / "composite.tif"
    tifffile.imwrite(src, channels, imagej=True, metadata={"axes": "CYX"})
    header = io.image_header(src)
    every = files.in_memory_bytes(header, seg.info.classes)
    picked = files.in_memory_bytes(header, seg.info.classes, picked=True)
    print(f"estimate, every channel: {every / 2**20:.0f} MiB")
    print(f"estimate, one picked:    {picked / 2**20:.0f} MiB")
    files.segment_file(seg, src, folder / "warm", channel=1, memory_limit=every + 1)
    tracemalloc.start()
    start = time.perf_counter()
    result = files.segment_file(seg, src, folder / "out", channel=1, memory_limit=picked + 1)
    took = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"measured peak (tracemalloc): {peak / 2**20:.0f} MiB in {took:.1f} s")
    print(f"window by window: {result.windowed}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ISBI)
