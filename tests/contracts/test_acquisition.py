"""A real pymmcore-plus MDA (UniMMCore, a Python camera serving 12-bit ISBI frames)
segmented as it runs by unet_edge.paths.acquisition.watch, with feedback into the MDA."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pymmcore_plus", reason="needs the [mmcore] extra (pymmcore-plus)")
useq = pytest.importorskip("useq", reason="needs the [mmcore] extra (pymmcore-plus)")

from mmcore_helpers import camera_core, isbi_frames12  # noqa: E402

from unet_edge.paths.acquisition import AcquiredResult, watch  # noqa: E402
from unet_edge.runtime import Segmenter  # noqa: E402


@pytest.fixture(scope="module")
def frames(isbi: Path) -> list[np.ndarray]:
    """Twelve full ISBI slices (512 x 512) as 12-bit camera frames."""
    return isbi_frames12(isbi, 12, (512, 512))


def test_mda_results_tied_to_events_and_not_held_up(
    tiny_onnx: Path, frames: list[np.ndarray]
) -> None:
    seg = Segmenter(tiny_onnx)
    seg.segment(frames[0])  # warm up the session, as a running acquisition would be
    start = time.perf_counter()
    ref = [seg.segment(f) for f in frames]
    serial = time.perf_counter() - start
    core = camera_core(frames, exposure_ms=2.0)
    with watch(core, seg, labels=True) as acq:
        start = time.perf_counter()
        core.mda.run(useq.MDASequence(time_plan={"interval": 0, "loops": len(frames)}))
        mda = time.perf_counter() - start
        results = acq.wait(timeout=120)
    print(f"\nMDA {mda:.3f} s with watch() attached; serial segmentation {serial:.3f} s")
    assert [r.index for r in results] == list(range(len(frames)))
    for r in results:
        t = r.event.index["t"]
        assert t == r.index and r.ok and not r.dropped and r.error is None
        assert r.mask is not None and r.mask.dtype == np.uint8
        assert np.array_equal(r.mask, ref[t])
        assert r.labels is not None and r.labels.dtype == np.uint32
        if t < 3:
            assert np.array_equal(r.labels, seg.label(frames[t], min_size=0))
        assert r.latency is not None and r.latency > 0
    # the frames left the acquisition thread at once: the MDA ran at the camera's pace
    assert mda < 0.5 * serial, (mda, serial)


def test_on_result_adds_events_that_are_acquired(tiny_onnx: Path, frames: list[np.ndarray]) -> None:
    """A z-stack of 3 planes at every position whose frame has class-1 pixels."""
    seg = Segmenter(tiny_onnx)
    planned = [useq.MDAEvent(index={"p": p}) for p in range(4)]
    found = [bool((seg.segment(frames[p]) == 1).any()) for p in range(4)]

    def decide(result: AcquiredResult) -> list[useq.MDAEvent]:
        if "z" in result.event.index or result.mask is None or not (result.mask == 1).any():
            return []
        p = result.event.index["p"]
        return [useq.MDAEvent(index={"p": p, "z": z}) for z in range(3)]

    core = camera_core(frames, exposure_ms=1.0)
    with watch(core, seg, on_result=decide) as acq:
        core.mda.run(acq.events(planned))
        results = acq.wait(timeout=120)
    added = [r for r in results if "z" in r.event.index]
    assert sum(found) > 0 and len(added) == 3 * sum(found)
    assert core.camera.served == len(planned) + len(added) == len(results)
    assert sorted({r.event.index["p"] for r in added}) == [p for p in range(4) if found[p]]
    for r in results:  # the camera serves frames in turn: frame i is the i-th acquired
        assert np.array_equal(r.unwrap(), seg.segment(frames[r.index % len(frames)]))


def test_feedback_example_runs(tiny_onnx: Path, isbi: Path) -> None:
    """examples/mmcore_feedback.py as a user runs it (tiny model: every position qualifies)."""
    import subprocess
    import sys

    example = Path(__file__).resolve().parents[2] / "examples" / "mmcore_feedback.py"
    args = ["--model", str(tiny_onnx), "--positions", "3", "--planes", "2", "--min-objects", "1"]
    done = subprocess.run(
        [sys.executable, str(example), *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "9 frames acquired and segmented (3 planned, 6 added by feedback)" in done.stdout
