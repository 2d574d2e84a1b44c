"""Frame API and streaming on real ISBI frames at 16 bits: threads, close, order, drops, errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from unet_edge import io
from unet_edge.errors import ConfigError, InputError, UnetEdgeError
from unet_edge.paths.stream import DroppedFrameError, FrameResult
from unet_edge.runtime import Segmenter


@pytest.fixture(scope="module")
def frames16(isbi: Path, tmp_path_factory: pytest.TempPathFactory) -> list[np.ndarray]:
    """Six ISBI frames (160x192 crops) written as 16-bit TIFFs and read back."""
    folder = tmp_path_factory.mktemp("isbi16")
    rng = np.random.default_rng(0)
    out = []
    for i in range(6):
        img8 = io.read_image(isbi / "train" / "image" / f"{i:02d}.png")[:160, :192]
        # a 12-bit camera's range with the low bits a camera would add
        img16 = img8.astype(np.uint16) * 16 + rng.integers(0, 16, img8.shape, dtype=np.uint16)
        path = io.write_tiff(folder / f"{i:02d}.tif", img16)
        back = io.read_image(path)
        assert back.dtype == np.uint16 and np.array_equal(back, img16)
        out.append(back)
    return out


def stream_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("unet-edge-stream")]


def test_stream_equals_predict_in_order(tiny_onnx: Path, frames16: list[np.ndarray]) -> None:
    seg = Segmenter(tiny_onnx, tile=236)
    ref = [seg.predict(f) for f in frames16]
    results = list(seg.stream(frames16, drop="none", probabilities=True))
    assert [r.index for r in results] == list(range(len(frames16)))
    for r, p in zip(results, ref, strict=True):
        assert r.ok and not r.dropped and r.error is None and r.n_dropped == 0
        assert r.probabilities is not None and np.array_equal(r.probabilities, p)
        assert np.array_equal(r.unwrap(), p.argmax(0)) and r.mask is not None
        assert r.mask.dtype == np.uint8 and r.latency is not None and r.latency > 0


def test_eight_threads_on_16bit_frames(
    tiny_onnx: Path, frames16: list[np.ndarray], threads_match_serial
) -> None:
    seg = Segmenter(tiny_onnx, tile=204)
    threads_match_serial(
        seg, [frames16[i % 6] if i < 6 else np.stack(frames16[:2]) for i in range(8)]
    )


def test_close_while_threads_run(tiny_onnx: Path, frames16: list[np.ndarray]) -> None:
    """Each call in flight when close() happens either completes exactly or raises 'closed'."""
    seg = Segmenter(tiny_onnx, tile=204)
    ref = seg.predict(frames16[0])
    outcomes: list[str] = []
    lock = threading.Lock()
    started = threading.Barrier(5)

    def run() -> None:
        started.wait()
        for _ in range(50):
            try:
                p = seg.predict(frames16[0])
            except UnetEdgeError as e:
                assert "closed" in str(e)
                with lock:
                    outcomes.append("closed")
                return
            with lock:
                outcomes.append("ok" if np.array_equal(p, ref) else "WRONG")

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    started.wait()
    time.sleep(0.3)
    seg.close()
    seg.close()  # idempotent
    for t in threads:
        t.join(30)
    assert "WRONG" not in outcomes
    assert outcomes.count("closed") == 4  # every thread saw the close and stopped cleanly
    with pytest.raises(UnetEdgeError, match="closed"):
        list(seg.stream(frames16))


def test_bad_frames_mid_stream(tiny_onnx: Path, frames16: list[np.ndarray]) -> None:
    seg = Segmenter(tiny_onnx, tile=204)
    good = frames16[:3]
    nan = frames16[0].astype(np.float32)
    nan[5, 7] = np.nan
    source = [
        good[0],
        good[1],
        good[0][:100],  # wrong shape
        good[0].astype(np.uint8),  # wrong pixel type for this stream
        "not a frame",
        np.zeros((2, 160, 192, 3), np.uint16),  # not a frame at all
        good[2],
    ]
    results = list(seg.stream(source, drop="none"))
    assert [r.index for r in results] == list(range(7))
    assert [r.ok for r in results] == [True, True, False, False, False, False, True]
    assert "shape (100, 192)" in str(results[2].error)
    assert "uint8" in str(results[3].error)
    assert isinstance(results[4].error, InputError)
    for r in results[2:6]:
        assert r.mask is None and isinstance(r.error, InputError)
        with pytest.raises(InputError):
            r.unwrap()
    for r, f in zip([results[0], results[1], results[6]], good, strict=True):
        assert np.array_equal(r.mask, seg.segment(f))
    # NaN in a float stream fails that frame only
    fl = [frames16[0].astype(np.float32) / 65535, nan / 65535, frames16[1].astype(np.float32)]
    res = list(seg.stream(fl))
    assert [r.ok for r in res] == [True, False, True]
    assert "NaN" in str(res[1].error)


def test_unknown_drop_policy_and_queue(tiny_onnx: Path) -> None:
    seg = Segmenter(tiny_onnx)
    with pytest.raises(ConfigError, match="oldest"):
        seg.stream([], drop="olddest")
    with pytest.raises(InputError, match="max_queue"):
        seg.stream([], max_queue=0)


def camera(frames: list[np.ndarray], n: int, fps: float) -> Iterator[tuple[np.ndarray, float]]:
    """Frames due at a fixed rate, stamped with their capture time (late calls are not waited)."""
    t0 = time.perf_counter()
    for i in range(n):
        due = t0 + i / fps
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        yield frames[i % len(frames)], due


def test_drop_oldest_bounds_latency(tiny_onnx: Path, frames16: list[np.ndarray]) -> None:
    seg = Segmenter(tiny_onnx, tile=204)
    shape = frames16[0].shape
    seg.warmup(shape)
    t = time.perf_counter()
    refs = [seg.segment(f) for f in frames16]
    per_frame = (time.perf_counter() - t) / len(frames16)
    fps, n = 4.0 / per_frame, 24  # the camera is four times faster than the model
    kw = {"max_queue": 2, "shape": shape, "timestamps": True}
    kept = list(seg.stream(camera(frames16, n, fps), drop="none", **kw))
    fast = list(seg.stream(camera(frames16, n, fps), drop="oldest", **kw))
    for res in (kept, fast):
        assert [r.index for r in res] == list(range(n))
    assert not any(r.dropped for r in kept)
    lat_none = [r.latency for r in kept if r.latency is not None]
    lat_old = [r.latency for r in fast if r.latency is not None]
    dropped = [r for r in fast if r.dropped]
    assert len(dropped) > n // 3 and fast[-1].n_dropped == len(dropped)
    assert all(r.mask is None and r.latency is None for r in dropped)
    with pytest.raises(DroppedFrameError):
        dropped[0].unwrap()
    # drop="none" falls ever further behind; drop="oldest" stays bounded
    assert lat_none[-1] > 2 * max(lat_old[len(lat_old) // 2 :])
    assert lat_none[-1] > lat_none[n // 4]
    for r in fast:
        if r.ok:
            assert np.array_equal(r.mask, refs[r.index % 6])


def test_early_stop_joins_threads_and_closes_source(
    tiny_onnx: Path, frames16: list[np.ndarray]
) -> None:
    seg = Segmenter(tiny_onnx, tile=204)
    closed = threading.Event()

    def source() -> Iterator[np.ndarray]:
        try:
            i = 0
            while True:  # endless camera
                yield frames16[i % 6]
                i += 1
        finally:
            closed.set()

    before = len(stream_threads())
    results: list[FrameResult] = []
    for r in seg.stream(source(), drop="none"):
        results.append(r)
        if len(results) == 3:
            break
    assert [r.index for r in results] == [0, 1, 2]
    assert closed.wait(5)
    deadline = time.monotonic() + 5
    while len(stream_threads()) > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(stream_threads()) == before


def test_source_error_keeps_earlier_results(tiny_onnx: Path, frames16: list[np.ndarray]) -> None:
    seg = Segmenter(tiny_onnx, tile=204)

    def source() -> Iterator[np.ndarray]:
        yield frames16[0]
        yield frames16[1]
        raise OSError("camera unplugged")

    got: list[FrameResult] = []
    with pytest.raises(OSError, match="camera unplugged"):
        for r in seg.stream(source(), drop="none"):
            got.append(r)
    assert [r.index for r in got] == [0, 1] and all(r.ok for r in got)
    assert not stream_threads()


def test_mixed_size_stack_is_refused(tiny_onnx: Path, frames16: list[np.ndarray]) -> None:
    seg = Segmenter(tiny_onnx)
    with pytest.raises(InputError, match="different shapes"):
        seg.predict([frames16[0], frames16[1][:150]])
