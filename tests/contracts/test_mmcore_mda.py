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


def test_feedback_example_runs(tiny_onnx: Path, isbi: Path, tmp_path: Path) -> None:
    """examples/mmcore_feedback.py as a user runs it (tiny model: every position qualifies)."""
    import subprocess
    import sys

    example = Path(__file__).resolve().parents[2] / "examples" / "mmcore_feedback.py"
    args = ["--model", str(tiny_onnx), "--positions", "3", "--planes", "2", "--timepoints", "2"]

    def run(*more: str) -> str:
        done = subprocess.run(
            [sys.executable, str(example), *args, *more],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    # every position qualifies: a z-stack of 2 at each of the 3, both rounds acquired
    out = run("--min-objects", "1")
    assert "12 frames acquired and segmented (6 planned, 6 added by feedback, 0 skipped)" in out
    # none does: the second round is skipped at every position
    out = run("--min-objects", str(10**9), "--output", str(tmp_path))
    assert "3 frames acquired and segmented (6 planned, 0 added by feedback, 3 skipped)" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"p000{p}_t0000_{k}.tif" for p in range(3) for k in ("labels", "mask")
    ]


def _pixel_size(core: object, um: float) -> None:
    """Give the UniMMCore a pixel-size configuration, as a microscope's objective has."""
    core.definePixelSizeConfig("Res")  # type: ignore[attr-defined]
    core.setPixelSizeUm("Res", um)  # type: ignore[attr-defined]
    core.setPixelSizeConfig("Res")  # type: ignore[attr-defined]


def test_watch_writes_calibrated_tiffs_named_by_event(
    tiny_onnx: Path, frames: list[np.ndarray], tmp_path: Path
) -> None:
    import tifffile

    from unet_edge import io
    from unet_edge.acquisition import watch as public_watch

    seg = Segmenter(tiny_onnx)
    core = camera_core(frames, exposure_ms=1.0)
    _pixel_size(core, 0.25)
    planned = [useq.MDAEvent(index={"p": p, "t": t}) for p in range(2) for t in range(2)]
    with public_watch(core, seg, labels=True, output=tmp_path / "masks") as acq:
        core.mda.run(acq.events(planned))
        results = acq.wait(timeout=120)
    names = sorted(p.name for p in (tmp_path / "masks").iterdir())
    stems = ["p0000_t0000", "p0000_t0001", "p0001_t0000", "p0001_t0001"]
    assert names == sorted(f"{s}_{k}.tif" for s in stems for k in ("labels", "mask"))
    for r in results:
        mask_file, labels_file = r.files
        assert mask_file.name == stems[r.index] + "_mask.tif"
        want = seg.segment(frames[r.index])
        assert np.array_equal(tifffile.imread(mask_file), want * 255)  # saved as the CLI does
        assert np.array_equal(tifffile.imread(labels_file), r.labels)
        cal = io.read_calibration(mask_file)
        assert cal is not None and (cal.x, cal.y, cal.unit) == (0.25, 0.25, "µm")
        assert io.read_provenance(mask_file)["event"]["index"] == r.event.index
    # a second acquisition into the same folder is refused before it starts
    with pytest.raises(FileExistsError, match="already holds 8 outputs"):
        public_watch(core, seg, output=tmp_path / "masks")


def test_watch_writes_ome_zarr(tiny_onnx: Path, frames: list[np.ndarray], tmp_path: Path) -> None:
    zarr = pytest.importorskip("zarr", reason="OME-Zarr outputs need zarr (the [dask] extra)")
    if int(zarr.__version__.split(".")[0]) < 3:
        pytest.skip(f"OME-Zarr outputs need zarr 3, found {zarr.__version__}")
    seg = Segmenter(tiny_onnx)
    core = camera_core(frames, exposure_ms=1.0)
    _pixel_size(core, 0.5)
    with watch(core, seg, labels=True, output=tmp_path, format="ome-zarr") as acq:
        core.mda.run(useq.MDASequence(time_plan={"interval": 0, "loops": 2}))
        results = acq.wait(timeout=120)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"t000{t}_{k}.ome.zarr" for t in range(2) for k in ("labels", "mask")
    ]
    for r in results:
        group = zarr.open_group(str(r.files[0]), mode="r")
        assert np.array_equal(group["0"][...], seg.segment(frames[r.index]) * 255)
        ms = group.attrs["ome"]["multiscales"][0]
        assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == [0.5, 0.5]
        assert ms["axes"][1] == {"name": "x", "type": "space", "unit": "micrometer"}
        labels = zarr.open_group(str(r.files[1]), mode="r")["0"][...]
        assert np.array_equal(labels, r.labels)


def test_skip_drops_the_planned_events_of_a_position(
    tiny_onnx: Path, frames: list[np.ndarray]
) -> None:
    """The first frame of position 0 decides: skip position 2; its events are never acquired.
    Planned events are handed to the runner at their start time, so decisions made before
    then apply to them."""
    from unet_edge.acquisition import Skip

    seg = Segmenter(tiny_onnx)
    # positions 2 and 3 are due 1.5 s in, long after the first frame's result
    planned = [
        useq.MDAEvent(index={"p": p, "t": t}, min_start_time=1.5 if p >= 2 else None)
        for p in range(4)
        for t in range(3)
    ]

    def decide(result: AcquiredResult) -> Skip | None:
        return Skip(p=2) if result.event.index == {"p": 0, "t": 0} else None

    core = camera_core(frames, exposure_ms=1.0)
    with watch(core, seg, on_result=decide) as acq:
        core.mda.run(acq.events(planned))
        results = acq.wait(timeout=120)
    acquired = [r.event.index for r in results]
    assert [e.index for e in acq.skipped] == [{"p": 2, "t": t} for t in range(3)]
    assert acquired == [e.index for e in planned if e.index["p"] != 2]
    assert core.camera.served == 9 and all(r.ok for r in results)


def test_wait_for_results_applies_every_decision_to_the_next_event(
    tiny_onnx: Path, frames: list[np.ndarray]
) -> None:
    """With no exposure the runner would race ahead of the model; in lockstep it cannot."""
    from unet_edge.acquisition import Skip

    seg = Segmenter(tiny_onnx)
    planned = [useq.MDAEvent(index={"p": p}) for p in range(4)]

    def decide(result: AcquiredResult) -> object:
        index = result.event.index
        if index == {"p": 0}:
            return Skip(p=1)  # the very next planned event
        if index == {"p": 2}:
            return useq.MDAEvent(index={"p": 2, "z": 0})
        return None

    core = camera_core(frames, exposure_ms=0.0)
    with watch(core, seg, on_result=decide) as acq:
        core.mda.run(acq.events(planned, wait_for_results=True))
        results = acq.wait(timeout=120)
    assert [r.event.index for r in results] == [{"p": 0}, {"p": 2}, {"p": 2, "z": 0}, {"p": 3}]
    assert [e.index for e in acq.skipped] == [{"p": 1}]


def test_results_carry_the_quality_of_the_shipped_model(isbi: Path, tmp_path: Path) -> None:
    """The shipped model has domain statistics: each result says how its frame compares."""
    from unet_edge import io

    seg = Segmenter()  # the shipped ISBI model
    crops = isbi_frames12(isbi, 2, (256, 256))
    core = camera_core(crops, exposure_ms=1.0)
    with watch(core, seg, output=tmp_path) as acq:
        core.mda.run(useq.MDASequence(time_plan={"interval": 0, "loops": 2}))
        results = acq.wait(timeout=300)
    for r in results:
        want = seg.analyze(crops[r.index]).quality
        assert want is not None and r.quality == want[0] and r.quality.in_domain
        assert io.read_provenance(r.files[0])["quality"]["score"] == round(r.quality.score, 3)


def test_rescale_segments_at_the_models_pixel_size(isbi: Path, tiny_onnx: Path) -> None:
    """The shipped model was trained at 4 nm; a core at 8 nm has each frame segmented
    upsampled 2x, the mask coming back on the frame's grid (as Segmenter.segment does)."""
    from unet_edge.errors import ConfigError

    seg = Segmenter()
    crops = isbi_frames12(isbi, 2, (128, 128))
    core = camera_core(crops, exposure_ms=1.0)
    _pixel_size(core, 0.008)
    with watch(core, seg, rescale=True) as acq:
        core.mda.run(useq.MDASequence(time_plan={"interval": 0, "loops": 2}))
        results = acq.wait(timeout=300)
    for r in results:
        assert r.mask is not None and r.mask.shape == (128, 128)
        assert np.array_equal(r.mask, seg.segment(crops[r.index], pixel_size=0.008))
    assert not np.array_equal(results[0].mask, seg.segment(crops[0]))  # it did rescale
    with pytest.raises(ConfigError, match="does not record the pixel size"):
        watch(core, Segmenter(tiny_onnx), rescale=True)
