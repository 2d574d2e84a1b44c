"""What the domain guard costs on a Dask run resampled to the model's pixel size, and that it
scores as in memory.

Segments a 2048 x 2048 mosaic of 16 ISBI test slices with the shipped model through
``segment_to_zarr`` (Dask's threaded scheduler, in this process) at a stated pixel size
(0.003 µm: the 4 nm model sees it shrunk to 1536 x 1536), timing the guard's part
(cutting the feature windows' parts out of each chunk's model-grid result,
:class:`unet_edge.paths.quality.WindowParts`, and scoring them at the end) against the
whole run. Then it compares the score in the zarr array's attributes with
``Segmenter.analyze`` at the same pixel size, counts the chunks' kernel runs (each
chunk once: the score is computed with the result, not after it), and times the same
run without the score (``segment_dask``'s mask stored alone).

    python benchmarks/domain_guard_dask.py [ISBI_FOLDER] [PIXEL_SIZE_UM]
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
from domain_guard_large import _timed  # benchmarks/: time spent inside a wrapped function

from unet_edge import Segmenter, io
from unet_edge.paths import dask as dask_path
from unet_edge.paths import quality

ISBI = Path(__file__).resolve().parents[2] / "shared" / "data" / "isbi2012"
CHUNK = 1024  # 2 x 2 chunks of the input


def _counted(f: Callable[..., Any], runs: list[Any]) -> Callable[..., Any]:
    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        runs.append(args[3])  # the chunk's region
        return f(*args, **kwargs)

    return wrapper


def main(isbi: Path = ISBI, um: float = 0.003) -> dict[str, float]:
    import zarr

    frames = [io.read_image(isbi / "test" / "image" / f"{i:02d}.png") for i in range(16)]
    mosaic = np.concatenate([np.concatenate(frames[r * 4 : r * 4 + 4], 1) for r in range(4)])
    spent, runs = [0.0], []
    quality.WindowParts.add = _timed(quality.WindowParts.add, spent)  # type: ignore[method-assign]
    quality._assess_parts = _timed(quality._assess_parts, spent)  # type: ignore[assignment]
    dask_path.run_region = _counted(dask_path.run_region, runs)  # type: ignore[assignment]
    kw: dict[str, Any] = {"pixel_size": um, "chunk": CHUNK}
    with tempfile.TemporaryDirectory() as tmp, Segmenter() as seg:
        for name in ("warm-up", "alone"):  # the first run opens each thread's model
            t0 = time.perf_counter()
            mask = dask_path.segment_dask(mosaic, segmenter=seg, **kw)
            mask.to_zarr(str(Path(tmp) / f"{name}.zarr"))
            alone = time.perf_counter() - t0
        runs.clear()
        t0 = time.perf_counter()
        out = dask_path.segment_to_zarr(mosaic, Path(tmp) / "m.zarr", segmenter=seg, **kw)
        total = time.perf_counter() - t0
        scored = zarr.open_array(str(out), mode="r").attrs["unet_edge"]["quality"][0]
        chunks = mask.numblocks[0] * mask.numblocks[1]
        in_memory = seg.analyze(mosaic, pixel_size=um).quality_record()
    assert in_memory is not None
    return {
        "seconds": total,
        "seconds_without_score": alone,
        "guard_ms": spent[0] * 1e3,
        "guard_share_percent": 100 * spent[0] / total,
        "chunks": float(chunks),
        "chunk_runs": float(len(runs)),
        "score_dask": scored["score"],
        "score_in_memory": in_memory[0]["score"],
        "equal": float(scored == in_memory[0]),
    }


if __name__ == "__main__":
    args = sys.argv[1:]
    um = float(args[1]) if len(args) > 1 else 0.003
    found = main(Path(args[0]) if args else ISBI, um)
    print(
        f"segment_to_zarr 2048 x 2048 at {um:g} µm/px (resampled to the model's 0.004): "
        f"{found['seconds']:.2f} s, of which the domain guard {found['guard_ms']:.1f} ms "
        f"({found['guard_share_percent']:.2f}%); "
        f"without the score {found['seconds_without_score']:.2f} s; "
        f"{found['chunks']:.0f} chunks, {found['chunk_runs']:.0f} kernel runs with the score; "
        f"score {found['score_dask']:.2f} Dask, "
        f"{found['score_in_memory']:.2f} in memory, records equal: {bool(found['equal'])}"
    )
