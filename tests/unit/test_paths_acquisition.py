"""unet_edge.paths.acquisition on a real UniMMCore: limits, drops, failures, close, imports."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mmcore_helpers import camera_core, isbi_frames12

from unet_edge.errors import ConfigError, DroppedFrameError, InputError, NonFiniteError
from unet_edge.paths.acquisition import watch
from unet_edge.runtime import Segmenter

try:
    import useq
except ModuleNotFoundError:  # the runtime-only install: only the first two tests run
    useq = None

needs_mmcore = pytest.mark.skipif(
    useq is None or importlib.util.find_spec("pymmcore_plus") is None,
    reason="needs the [mmcore] extra (pymmcore-plus)",
)


def test_runtime_imports_without_pymmcore(imports_none_of) -> None:
    imports_none_of(
        "import unet_edge, unet_edge.paths.acquisition", "pymmcore_plus", "useq", "pymmcore"
    )


def test_watch_without_the_extra_says_how_to_install_it() -> None:
    code = (
        "import sys; sys.modules['useq'] = None\n"
        "from unet_edge.paths.acquisition import watch\n"
        "from unet_edge.errors import InputError\n"
        "try:\n    watch(object(), None)\nexcept InputError as e:\n    print(e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "pip install 'unet-edge[mmcore]'" in done.stdout, done.stderr


@pytest.fixture(scope="module")
def frames(isbi: Path) -> list[np.ndarray]:
    return isbi_frames12(isbi, 8, (512, 512))


@pytest.fixture(scope="module")
def seg(tiny_onnx: Path) -> Segmenter:
    return Segmenter(tiny_onnx)


def _workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "unet-edge-acquisition"]


def _loops(n: int) -> Any:
    return useq.MDASequence(time_plan={"interval": 0, "loops": n})


@needs_mmcore
def test_bad_arguments_say_what_was_received(seg: Segmenter, frames: list[np.ndarray]) -> None:
    with pytest.raises(InputError, match="received object"):
        watch(object(), seg)
    core = camera_core(frames)
    with pytest.raises(ConfigError, match=r"max_queue .* received 0"):
        watch(core, seg, max_queue=0)
    with pytest.raises(ConfigError, match=r"memory_budget .* received -1"):
        watch(core, seg, memory_budget=-1)
    with pytest.raises(ConfigError, match="oldest"):
        watch(core, seg, drop="oldst")
    assert not _workers()


@needs_mmcore
def test_drop_oldest_keeps_order_and_one_result_per_frame(
    seg: Segmenter, frames: list[np.ndarray]
) -> None:
    core = camera_core(frames, exposure_ms=0.0)
    seen: list[int] = []
    with watch(
        core, seg, max_queue=1, drop="oldest", on_result=lambda r: seen.append(r.index)
    ) as acq:
        core.mda.run(_loops(16))
        results = acq.wait(timeout=120)
    assert [r.index for r in results] == list(range(16)) == seen
    assert 0 < acq.n_dropped < 16
    for r in results:
        if r.dropped:
            assert r.mask is None and r.latency is None
            with pytest.raises(DroppedFrameError):
                r.unwrap()
        else:
            assert np.array_equal(r.unwrap(), seg.segment(frames[r.index % len(frames)]))


@needs_mmcore
def test_memory_budget_holds_the_acquisition_back_and_keeps_every_frame(
    seg: Segmenter, frames: list[np.ndarray]
) -> None:
    core = camera_core(frames, exposure_ms=0.0)
    # room for one waiting 512 x 512 uint16 frame, not two
    with watch(core, seg, memory_budget=frames[0].nbytes + 1) as acq:
        core.mda.run(_loops(6))
        results = acq.wait(timeout=120)
    assert acq.n_dropped == 0 and [r.index for r in results] == list(range(6))
    assert all(np.array_equal(r.unwrap(), seg.segment(frames[r.index])) for r in results)


@needs_mmcore
def test_a_bad_frame_fails_alone(seg: Segmenter, frames: list[np.ndarray]) -> None:
    core = camera_core(frames)
    bad = frames[0].astype(np.float32)
    bad[3, 3] = np.nan
    signals = core.mda.events
    with watch(core, seg) as acq:
        for i, img in enumerate([frames[0], bad, frames[1]]):
            signals.frameReady.emit(img, useq.MDAEvent(index={"t": i}), {})
        signals.sequenceFinished.emit(_loops(3))
        results = acq.wait(timeout=60)
    assert [r.ok for r in results] == [True, False, True]
    assert isinstance(results[1].error, NonFiniteError)
    with pytest.raises(NonFiniteError):
        results[1].unwrap()
    assert np.array_equal(results[2].unwrap(), seg.segment(frames[1]))


@needs_mmcore
def test_on_result_returning_garbage_is_reported_by_wait(
    seg: Segmenter, frames: list[np.ndarray]
) -> None:
    core = camera_core(frames)
    for garbage, received in ((["not an event"], "str"), (5, "int")):
        with watch(core, seg, on_result=lambda r, g=garbage: g) as acq:
            core.mda.run(acq.events(_loops(2)))
            with pytest.raises(InputError, match=f"received {received}"):
                acq.wait(timeout=60)
        assert len(acq.results) == 2 and all(r.ok for r in acq.results)


@needs_mmcore
def test_wait_times_out_and_close_stops_the_worker(
    seg: Segmenter, frames: list[np.ndarray]
) -> None:
    core = camera_core(frames)
    acq = watch(core, seg)
    assert _workers()
    with pytest.raises(TimeoutError, match="did not finish"):
        acq.wait(timeout=0.2)
    acq.close()
    acq.close()  # twice is harmless
    assert not _workers() and acq.wait(timeout=1) == []
    core.mda.run(_loops(2))  # disconnected: frames are no longer taken
    assert acq.results == []


@needs_mmcore
def test_wait_follows_an_mda_on_its_own_thread(seg: Segmenter, frames: list[np.ndarray]) -> None:
    """``core.run_mda`` (how GUIs start it) returns at once; wait() waits for the end."""
    core = camera_core(frames, exposure_ms=20.0)
    with watch(core, seg) as acq:
        thread = core.run_mda(_loops(5))
        results = acq.wait(timeout=120)
        thread.join(timeout=10)
    assert [r.event.index["t"] for r in results] == list(range(5))
    assert all(np.array_equal(r.unwrap(), seg.segment(frames[r.index])) for r in results)
