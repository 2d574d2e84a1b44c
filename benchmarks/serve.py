"""Frames per second and latency of ``unet-edge serve`` at 1, 2 and 4 clients, against the
same frames through the Python API (one Segmenter, one caller), on ISBI 2012 slices.

    python benchmarks/serve.py [--model M] [--frames N] [--crop S] [--clients 1,2,4]

Starts the server as a process on a free port (as a user would), checks every mask
against ``Segmenter.segment`` and prints a Markdown table. Needs the ISBI data in ../shared.
"""

from __future__ import annotations

import argparse
import http.client
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from unet_edge import Segmenter

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared/data/isbi2012/test/image"


def frames(n: int, crop: int) -> list[np.ndarray]:
    """``n`` ISBI test slices (uint8, cropped to ``crop`` x ``crop``), reused cyclically."""
    paths = sorted(DATA.glob("*.png"))
    return [cv2.imread(str(paths[i % len(paths)]), 0)[:crop, :crop] for i in range(n)]


def post(port: int, frame: np.ndarray) -> np.ndarray:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    h, w = frame.shape
    conn.request("POST", f"/segment?shape={h},{w}&dtype=uint8", frame.tobytes())
    reply = conn.getresponse()
    body = reply.read()
    assert reply.status == 200, body
    return np.frombuffer(body, np.uint8).reshape(h, w)


def run_clients(port: int, images: list[np.ndarray], want: list[np.ndarray], clients: int):
    """Each client sends every frame; (frames per second, latencies in s)."""
    latencies: list[float] = []

    def client() -> None:
        for image, mask in zip(images, want, strict=True):
            start = time.perf_counter()
            got = post(port, image)
            latencies.append(time.perf_counter() - start)
            assert np.array_equal(got, mask), "server mask differs from Segmenter.segment"

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(latencies) / (time.perf_counter() - start), latencies


def row(name: str, fps: float, latencies: list[float]) -> str:
    p50, p99 = np.percentile(latencies, [50, 99]) * 1000
    return f"| {name} | {fps:.2f} | {p50:.0f} | {p99:.0f} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="ONNX model [default: the shipped one]")
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--crop", type=int, default=512)
    ap.add_argument("--clients", default="1,2,4")
    args = ap.parse_args()
    images = frames(args.frames, args.crop)
    with Segmenter(args.model) as seg:
        seg.segment(images[0])  # warm-up
        lat, want = [], []
        start = time.perf_counter()
        for image in images:
            t = time.perf_counter()
            want.append(seg.segment(image))
            lat.append(time.perf_counter() - t)
        api_fps = len(images) / (time.perf_counter() - start)
    cmd = [sys.executable, "-m", "unet_edge.cli", "serve", "--port", "0"]
    proc = subprocess.Popen(
        cmd + (["-m", args.model] if args.model else []), stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    port = int(re.search(r":(\d+)\s*$", proc.stderr.readline()).group(1))  # type: ignore[union-attr]
    try:
        post(port, images[0])  # warm-up
        print(f"{len(images)} ISBI frames {images[0].shape}, uint8; clients each send all\n")
        print("| path | frames/s | p50 ms | p99 ms |\n| --- | --- | --- | --- |")
        print(row("Python API, 1 caller", api_fps, lat))
        for n in (int(c) for c in args.clients.split(",")):
            print(row(f"serve, {n} client{'s' * (n > 1)}", *run_clients(port, images, want, n)))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)


if __name__ == "__main__":
    main()
