"""Segment a pymmcore-plus acquisition as it runs, and let the masks steer it.

A real MDA runs offline on pymmcore-plus's UniMMCore with a camera written in
Python that serves ISBI 2012 slices as a 12-bit camera would (uint16). The plan
is a time-lapse: ``--timepoints`` rounds over ``--positions`` positions,
``--interval`` seconds apart. Each frame is segmented on a worker thread while
the acquisition goes on; at the first round, a position whose frame holds at
least ``--min-objects`` objects gets a z-stack of ``--planes`` events, which the
running acquisition acquires next, and a position with fewer is dropped from the
later rounds (``Skip(p=...)``). With ``--output`` every mask is written there
(TIFF, named by event, calibrated).

    pip install 'unet-edge[mmcore]'
    python examples/mmcore_feedback.py                     # the packaged ISBI model
    python examples/mmcore_feedback.py --model tiny.onnx --positions 8 --output masks

With a real microscope, use CMMCorePlus with its configuration instead of
``simulated_core``; the rest is the same.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import useq
from pymmcore_plus.experimental.unicore import SimpleCameraDevice, UniMMCore

from unet_edge import Segmenter, io
from unet_edge.acquisition import AcquiredResult, Skip, watch

ISBI = Path(__file__).resolve().parents[2] / "shared" / "data" / "isbi2012"


class IsbiCamera(SimpleCameraDevice):
    """Serves ISBI slices in turn as 12-bit frames, each after the exposure time."""

    def __init__(self, frames: list[np.ndarray], exposure_ms: float) -> None:
        super().__init__()
        self.frames, self.exposure, self.served = frames, exposure_ms, 0

    def get_exposure(self) -> float:
        return self.exposure

    def set_exposure(self, exposure: float) -> None:
        self.exposure = exposure

    def sensor_shape(self) -> tuple[int, int]:
        h, w = self.frames[0].shape
        return h, w

    def dtype(self) -> Any:
        return np.uint16

    def snap(self, buffer: np.ndarray) -> dict[str, Any]:
        time.sleep(self.exposure / 1000)
        buffer[:] = self.frames[self.served % len(self.frames)]
        self.served += 1
        return {}


def simulated_core(frames: list[np.ndarray], exposure_ms: float) -> UniMMCore:
    """A UniMMCore whose camera serves ``frames``; its pixel size is ISBI 2012's."""
    # "no Micro-Manager installation found": harmless, the devices here are Python ones
    logging.getLogger("pymmcore-plus").setLevel(logging.CRITICAL)
    core = UniMMCore()
    core.loadPyDevice("Camera", IsbiCamera(frames, exposure_ms))
    core.initializeDevice("Camera")
    core.setCameraDevice("Camera")
    core.setAutoShutter(False)  # the simulated microscope has no shutter
    core.definePixelSizeConfig("Res")  # what an objective's configuration says
    core.setPixelSizeUm("Res", 0.004)  # ISBI 2012: 4 x 4 nm pixels
    core.setPixelSizeConfig("Res")
    return core


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="ONNX model (default: the packaged one)")
    ap.add_argument("--positions", type=int, default=6)
    ap.add_argument("--timepoints", type=int, default=3)
    ap.add_argument("--interval", type=float, default=0.5, help="seconds between rounds")
    ap.add_argument("--output", default=None, help="folder for the masks (TIFF)")
    ap.add_argument("--planes", type=int, default=3)
    ap.add_argument("--min-objects", type=int, default=40)
    ap.add_argument("--size", type=int, default=256, help="crop of each slice (pixels)")
    ap.add_argument("--exposure-ms", type=float, default=10.0)
    args = ap.parse_args()

    slices = [io.read_image(ISBI / "train" / "image" / f"{i:02d}.png") for i in range(4)]
    frames = [s[: args.size, : args.size].astype(np.uint16) * 16 for s in slices]
    seg = Segmenter(args.model)
    core = simulated_core(frames, args.exposure_ms)

    def decide(result: AcquiredResult) -> list[useq.MDAEvent] | Skip:
        """At the first round: a z-stack where there are enough objects, else skip the
        position's later rounds; nothing for added planes and later rounds."""
        index = result.event.index
        if "z" in index or index.get("t") != 0 or result.labels is None:
            return []
        n, p = int(result.labels.max()), index["p"]
        verdict = "z-stack" if n >= args.min_objects else "skip its later rounds"
        print(f"position {p}: {n} objects -> {verdict}")
        if n < args.min_objects:
            return Skip(p=p)
        return [useq.MDAEvent(index={"t": 0, "p": p, "z": z}) for z in range(args.planes)]

    planned = [  # round t starts t * interval after the acquisition's start
        useq.MDAEvent(index={"t": t, "p": p}, min_start_time=t * args.interval)
        for t in range(args.timepoints)
        for p in range(args.positions)
    ]
    start = time.perf_counter()
    with watch(core, seg, labels=True, on_result=decide, output=args.output) as acq:
        # each planned event waits for the results so far: every decision applies in time
        core.mda.run(acq.events(planned, wait_for_results=True))
        results = acq.wait()
    took = time.perf_counter() - start
    latency = np.array([r.latency for r in results if r.latency is not None])
    added = sum("z" in r.event.index for r in results)
    print(
        f"{len(results)} frames acquired and segmented ({len(planned)} planned, {added} "
        f"added by feedback, {len(acq.skipped)} skipped) in {took:.2f} s; latency from "
        f"arrival p50 {np.percentile(latency, 50) * 1e3:.0f} ms, "
        f"p99 {np.percentile(latency, 99) * 1e3:.0f} ms"
    )


if __name__ == "__main__":
    main()
