"""unet_edge.kernel: the one place a kernel is built, used by every path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from unet_edge import kernel, processing, tiling
from unet_edge.config import Normalization
from unet_edge.errors import InputError
from unet_edge.geometry import Geometry

GEOMETRY = Geometry()
PERCENTILE = Normalization(mode="percentile", low=1.0, high=99.0)


def _centre(batch: np.ndarray) -> np.ndarray:
    """A valid network with the default halo that returns its input's centre, twice (K=2)."""
    h = GEOMETRY.halo
    core = batch[:, :1, h:-h, h:-h]
    return np.concatenate([core, 1 - core], axis=1)


def test_build_normalises_each_window_with_the_whole_image_scaling() -> None:
    image = np.random.default_rng(0).integers(0, 4096, (300, 257), dtype=np.uint16)
    spec = kernel.Spec(PERCENTILE, channels=1, classes=2)
    scaling = processing.scaling_for(image, PERCENTILE, 1)
    plan = tiling.plan(image.shape, GEOMETRY, 204)
    out = kernel.for_frame(spec, image, plan, scaling, batch_size=3).run(_centre)
    whole = processing.normalize(image, PERCENTILE, 1, scaling)
    assert np.array_equal(out[0], whole[0])


def test_wrap_sees_the_reader_and_the_prepare_step() -> None:
    image = np.zeros((100, 90), np.uint8)
    seen: dict[str, int] = {}

    def wrap(stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any) -> Any:
            seen[stage] = seen.get(stage, 0) + 1
            return fn(*args)

        return counted

    spec = kernel.Spec(PERCENTILE, channels=1, classes=2)
    plan = tiling.plan(image.shape, GEOMETRY, 204)
    scaling = processing.scaling_for(image, PERCENTILE, 1)
    kernel.for_frame(spec, image, plan, scaling, wrap=wrap).run(_centre)
    assert seen["normalise"] == plan.n_tiles
    assert seen["tile"] >= plan.n_tiles


def test_a_prepare_step_replaces_the_scaling() -> None:
    image = np.random.default_rng(1).random((64, 70, 1), dtype=np.float32)
    spec = kernel.Spec(PERCENTILE, channels=1, classes=2)
    plan = tiling.whole_image_plan(image.shape[:2], GEOMETRY)
    run = kernel.build(
        spec, plan, tiling.array_reader(image), None, prepare=lambda w: w.transpose(2, 0, 1)
    )
    assert np.array_equal(run.run(_centre)[0], image[:, :, 0])


def test_no_scaling_and_no_prepare_is_refused() -> None:
    spec = kernel.Spec(PERCENTILE, channels=1, classes=2)
    plan = tiling.plan((10, 10), GEOMETRY, 204)
    with pytest.raises(InputError, match="scaling or a prepare step"):
        kernel.build(spec, plan, tiling.array_reader(np.zeros((10, 10))), None)


def test_prepare_frames_scales_each_frame_of_a_stack_on_its_own() -> None:
    rng = np.random.default_rng(2)
    stack = np.stack([rng.integers(0, 255, (40, 50)), rng.integers(0, 4000, (40, 50))])
    spec = kernel.Spec(PERCENTILE, channels=1, classes=2)
    frames, is_stack = kernel.prepare_frames(stack.astype(np.uint16), spec)
    assert is_stack and len(frames) == 2
    for (frame, scaling), raw in zip(frames, stack, strict=True):
        assert np.array_equal(frame, raw)
        assert scaling == processing.scaling_for(frame, PERCENTILE, 1)


def test_prepare_frames_refuses_a_frame_with_the_wrong_channels() -> None:
    spec = kernel.Spec(PERCENTILE, channels=3, classes=2)
    with pytest.raises(InputError, match="3 channels"):
        kernel.prepare_frames(np.zeros((20, 20), np.uint8), spec)


def test_the_segmenter_builds_its_kernels_here(tiny_onnx: Path) -> None:
    """analyze, frame_run and the step-wise analyze (napari's progress) agree bit for bit."""
    from unet_edge.runtime import Segmenter

    image = np.random.default_rng(3).integers(0, 255, (2, 150, 170), dtype=np.uint8)
    with Segmenter(tiny_onnx, tile=204) as seg:
        whole = seg.analyze(image)
        steps = seg.analyze_steps(image)
        progress = []
        while True:
            try:
                progress.append(next(steps))
            except StopIteration as done:
                stepped = done.value
                break
        by_frame = [seg.predict_frame(f) for f in image]
    assert np.array_equal(whole.probabilities, stepped.probabilities)
    assert np.array_equal(whole.probabilities, np.stack(by_frame))
    total = progress[0][1]
    assert progress[0] == (0, total) and progress[-1] == (total, total)
