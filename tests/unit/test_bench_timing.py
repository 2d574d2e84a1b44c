"""One frame timed per stage (unet_edge/bench/timing.py): the runtime's own pipeline, the
same probabilities as the Segmenter."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unet_edge import bench, io, metadata, processing, tiling
from unet_edge.runtime import Segmenter


def test_timed_frame_is_the_runtime_pipeline(tiny_onnx: Path, tmp_path: Path) -> None:
    path = bench.sample_path()
    info = metadata.read(tiny_onnx)
    with Segmenter(tiny_onnx, tile=380) as seg:
        plan = seg.plan_for((512, 512))
        probs, stages = bench.timed_frame(path, info, plan, seg.run_batch, 3, tmp_path / "m.png")
        expected = seg.predict(io.read_image(path))
        x = processing.normalize(io.read_image(path), info.normalization, 1)
        tiled = tiling.run_tiled(x, plan, seg.run_batch, 2, 1)
    assert np.array_equal(probs, expected) and np.array_equal(probs, tiled)
    assert set(stages) == set(bench.STAGES) and all(v >= 0 for v in stages.values())
    mask = io.read_image(tmp_path / "m.png")
    assert np.array_equal(mask, processing.mask_to_image(processing.to_mask(expected), 2))
