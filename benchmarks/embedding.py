"""Per-frame latency and frames/s of the three ways into unet-edge from acquisition software,
on the same frames: the Python object (``Segmenter.stream``), a pymmcore-plus MDA watched by
``unet_edge.acquisition.watch``, and ``unet-edge serve`` over HTTP.

    python benchmarks/embedding.py [--model M] [--frames N] [--crop S] [--interval-ms T]

The frames are ISBI 2012 slices made 12-bit (uint16, 0..4095), as a camera gives them.
Each way gets them at the same camera rate, one every ``--interval-ms`` (default: 1.5 x
the median time of ``Segmenter.segment`` on them, so the model keeps up and latency is
the work per frame, not a queue), and latency counts from each frame's capture:

- stream: a generator yields ``(frame, capture time)`` pairs (``timestamps=True``);
- watch: a real MDA on pymmcore-plus's ``UniMMCore`` with a Python camera whose exposure
  is the interval; latency from ``frameReady`` (the frame's arrival);
- serve: one client sends frame i at start + i x interval (raw uint16 body) and counts
  from then to the reply, as a camera loop in another language would.

Every mask is checked against ``Segmenter.segment``'s (the row says so). Prints a
Markdown table. Needs the ISBI data in ../shared and the [mmcore] extra (pymmcore-plus).
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from unet_edge import Segmenter

ROOT = Path(__file__).resolve().parents[1]
ISBI = ROOT.parent / "shared" / "data" / "isbi2012"


def stats(name: str, latencies: list[float], wall: float, same: bool) -> dict[str, object]:
    p50, p99 = np.percentile(latencies, [50, 99]) * 1000
    fps = len(latencies) / wall
    return {"way": name, "p50": p50, "p99": p99, "fps": fps, "same": same}


def by_segment(seg: Segmenter, frames: list[np.ndarray]) -> tuple[dict[str, object], list]:
    """``Segmenter.segment`` called on each frame in turn (no camera: as fast as it goes)."""
    masks, lat = [], []
    start = time.perf_counter()
    for f in frames:
        t = time.perf_counter()
        masks.append(seg.segment(f))
        lat.append(time.perf_counter() - t)
    return stats("Segmenter.segment, serial", lat, time.perf_counter() - start, True), masks


def camera(frames: list[np.ndarray], interval: float, start: float) -> Iterator[tuple]:
    """Frame i at ``start + i * interval``, stamped with that capture time."""
    for i, f in enumerate(frames):
        due = start + i * interval
        time.sleep(max(0.0, due - time.perf_counter()))
        yield f, due


def by_stream(seg: Segmenter, frames: list[np.ndarray], want: list, interval: float) -> dict:
    start = time.perf_counter() + 0.05
    source = camera(frames, interval, start)
    results = list(seg.stream(source, drop="none", timestamps=True, shape=frames[0].shape))
    wall = time.perf_counter() - start
    same = all(np.array_equal(r.unwrap(), m) for r, m in zip(results, want, strict=True))
    return stats("Segmenter.stream (Python)", [r.latency for r in results], wall, same)


def by_watch(seg: Segmenter, frames: list[np.ndarray], want: list, interval: float) -> dict:
    import useq

    sys.path.insert(0, str(ROOT / "examples"))
    from mmcore_feedback import simulated_core  # the Python camera of the example

    from unet_edge.acquisition import watch

    core = simulated_core(frames, interval * 1000)  # exposure: the camera interval
    sequence = useq.MDASequence(time_plan={"interval": 0, "loops": len(frames)})
    with watch(core, seg) as acq:
        start = time.perf_counter()
        core.mda.run(sequence)
        results = acq.wait(timeout=600)
        wall = time.perf_counter() - start
    same = all(np.array_equal(r.unwrap(), m) for r, m in zip(results, want, strict=True))
    lat = [r.latency for r in results if r.latency is not None]
    return stats("watch(core) on a pymmcore-plus MDA", lat, wall, same)


def post(port: int, frame: np.ndarray) -> np.ndarray:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    h, w = frame.shape
    conn.request("POST", f"/segment?shape={h},{w}&dtype=uint16", frame.astype("<u2").tobytes())
    reply = conn.getresponse()
    body = reply.read()
    conn.close()
    if reply.status != 200:
        raise RuntimeError(f"server answered {reply.status}: {body[:200]!r}")
    return np.frombuffer(body, np.uint8).reshape(h, w)


def by_server(model: str | None, frames: list[np.ndarray], want: list, interval: float) -> dict:
    cmd = [sys.executable, "-m", "unet_edge.cli", "serve", "--port", "0"]
    proc = subprocess.Popen(
        cmd + (["-m", model] if model else []), stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    said = ""
    for line in proc.stderr:  # warnings may come before the address
        said += line
        if found := re.search(r"serving .* on http://\S+:(\d+)", line):
            port = int(found.group(1))
            break
    else:
        raise RuntimeError(f"the server did not start: {said}")
    try:
        post(port, frames[0])  # warm-up, as the other ways are warm
        masks, lat = [], []
        start = time.perf_counter() + 0.05
        for f, due in camera(frames, interval, start):
            masks.append(post(port, f))
            lat.append(time.perf_counter() - due)
        wall = time.perf_counter() - start
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    same = all(np.array_equal(a, b) for a, b in zip(masks, want, strict=True))
    return stats("unet-edge serve, HTTP (1 client)", lat, wall, same)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="ONNX model [default: the shipped one]")
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--interval-ms", type=float, default=None, help="camera interval")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    from mmcore_helpers import isbi_frames12  # the 12-bit camera frames the MDA tests use

    frames = isbi_frames12(ISBI, args.frames, (args.crop, args.crop))
    with Segmenter(args.model) as seg:
        seg.segment(frames[0])  # warm-up: every way below runs warm
        row, want = by_segment(seg, frames)
        interval = (args.interval_ms or 1.5 * row["p50"]) / 1000  # type: ignore[operator]
        rows = [row, by_stream(seg, frames, want, interval), by_watch(seg, frames, want, interval)]
        rows.append(by_server(args.model, frames, want, interval))
        # once more at the end: on a shared machine the load drifts during the run
        again, _ = by_segment(seg, frames)
        rows.append({**again, "way": "Segmenter.segment, serial, again at the end"})
    h, w = frames[0].shape
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"{len(frames)} ISBI frames {h}x{w}, uint16 (12-bit); a frame every "
        f"{interval * 1000:.0f} ms; latency from capture; {os.cpu_count()} CPUs, "
        f"load average {load}\n"
    )
    print("| way in | latency p50 ms | p99 ms | frames/s | masks = segment |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        same = "yes" if r["same"] else "NO"
        print(f"| {r['way']} | {r['p50']:.0f} | {r['p99']:.0f} | {r['fps']:.1f} | {same} |")
    if not all(r["same"] for r in rows):
        sys.exit("a way in gave masks that differ from Segmenter.segment's")


if __name__ == "__main__":
    main()
