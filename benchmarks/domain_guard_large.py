"""What the domain guard costs on the windowed path, and that it scores as in memory.

Segments a 2048 x 2048 mosaic of 16 ISBI test slices window by window
(``segment_large``) with the shipped model, timing the guard's part (keeping the
feature windows of each computed region and scoring them at the end,
:mod:`unet_edge.paths.quality`) against the whole run, then compares the score
written into the mask's provenance with ``Segmenter.analyze`` on the same image.

    python benchmarks/domain_guard_large.py [ISBI_FOLDER]
"""

from __future__ import annotations

import functools
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from unet_edge import Segmenter, io
from unet_edge.paths import quality
from unet_edge.paths.windowed import segment_large

ISBI = Path(__file__).resolve().parents[2] / "shared" / "data" / "isbi2012"


def _timed(f: Callable[..., Any], spent: list[float]) -> Callable[..., Any]:
    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return f(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - t0

    return wrapper


def main(isbi: Path = ISBI) -> dict[str, float]:
    frames = [io.read_image(isbi / "test" / "image" / f"{i:02d}.png") for i in range(16)]
    mosaic = np.concatenate([np.concatenate(frames[r * 4 : r * 4 + 4], 1) for r in range(4)])
    spent = [0.0]
    for name in ("add", "record"):
        setattr(quality.RegionQuality, name, _timed(getattr(quality.RegionQuality, name), spent))
    with tempfile.TemporaryDirectory() as tmp, Segmenter() as seg:
        io.write_tiff(Path(tmp) / "mosaic.tif", mosaic)
        t0 = time.perf_counter()
        out = segment_large(seg, Path(tmp) / "mosaic.tif", Path(tmp) / "mask.tif")
        total = time.perf_counter() - t0
        windowed = io.read_provenance(out)["quality"][0]
        in_memory = seg.analyze(mosaic).quality_record()
    assert in_memory is not None
    return {
        "seconds": total,
        "guard_ms": spent[0] * 1e3,
        "guard_share_percent": 100 * spent[0] / total,
        "score_windowed": windowed["score"],
        "score_in_memory": in_memory[0]["score"],
        "equal": float(windowed == in_memory[0]),
    }


if __name__ == "__main__":
    found = main(Path(sys.argv[1]) if len(sys.argv) > 1 else ISBI)
    print(
        f"segment_large 2048 x 2048: {found['seconds']:.2f} s, of which the domain guard "
        f"{found['guard_ms']:.1f} ms ({found['guard_share_percent']:.2f}%); score "
        f"{found['score_windowed']:.2f} windowed, {found['score_in_memory']:.2f} in memory, "
        f"records equal: {bool(found['equal'])}"
    )
