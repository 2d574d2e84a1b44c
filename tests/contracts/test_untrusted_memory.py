"""An image too large to segment in memory is refused before anything is allocated, with a
typed error giving the estimate and the window-by-window path to use, never a bare
``MemoryError`` (unet_edge/cost.py: ``check_predict_memory``, called by
``Segmenter.predict``/``segment``/``analyze``).

The huge images are views of one pixel (``np.broadcast_to`` / ``as_strided``): nothing in
these tests allocates them, and each case asserts the memory it did allocate.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from unet_edge import MemoryLimitError, Segmenter, UnetEdgeError, cost

ONE = np.full((1, 1), 7, np.uint8)
GiB = 1 << 30


@pytest.fixture(scope="module")
def seg(tiny_onnx: Path) -> Segmenter:
    return Segmenter(tiny_onnx)


def _refused(call: Callable[[], object]) -> MemoryLimitError:
    """The error ``call`` raises, checked to come fast and without allocating the image."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(MemoryLimitError) as e:
            call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - t0 < 5 and peak < 64 << 20  # a strided sample, no more
    msg = str(e.value)
    assert "\n" not in msg and isinstance(e.value, MemoryError)
    assert isinstance(e.value, UnetEdgeError)
    assert "unet_edge.paths.dask.segment_dask(image, segmenter=seg)" in msg
    assert "unet_edge.paths.windowed.segment_large" in msg
    return e.value


@pytest.mark.parametrize("method", ["predict", "segment", "analyze"])
def test_a_30000_square_image_is_a_typed_error_with_the_estimate(
    seg: Segmenter, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    monkeypatch.setattr(cost, "MEMORY_LIMIT", GiB)  # a 1 GiB machine, whatever this one is
    image = np.broadcast_to(ONE, (30000, 30000))
    e = _refused(lambda: getattr(seg, method)(image))
    assert e.needed == 30000 * 30000 * (4 * 2 + 5) and e.available == GiB
    assert str(e).startswith(
        "an image of 30000 x 30000 pixels needs about 10.9 GiB to segment in memory "
        "(float32 probabilities of 2 classes and the mask), more than the 1.0 GiB allowed; "
        "segment it window by window instead"
    )


def test_what_this_machine_has_is_the_default_limit(seg: Segmenter) -> None:
    available = cost.available_memory()
    if available is None or available > 10**13:
        pytest.skip(f"this system does not say how much memory it has ({available})")
    huge = np.lib.stride_tricks.as_strided(ONE, (10**6, 10**6), (0, 0))  # 12 TiB to segment
    e = _refused(lambda: seg.segment(huge))
    assert e.available == pytest.approx(available, rel=0.2) and "available;" in str(e)
    assert e.needed == 10**12 * 13


def test_a_stack_counts_every_frame_and_its_stacked_copy(
    seg: Segmenter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cost, "MEMORY_LIMIT", 8 * GiB)
    stack = np.broadcast_to(ONE, (50, 30000, 30000))
    e = _refused(lambda: seg.predict(stack))
    assert e.needed == 50 * 30000 * 30000 * (4 * 2 * 2 + 5)
    assert str(e).startswith("50 frames of 30000 x 30000 pixels need about 880.1 GiB")
    assert "segment the frames one at a time, or each window by window" in str(e)
    frames = [np.broadcast_to(ONE, (30000, 30000))] * 3  # a list of frames is a stack too
    assert _refused(lambda: seg.segment(frames)).needed == 3 * 30000 * 30000 * 21


def test_classes_and_channels_of_the_model_count(
    rgb_onnx: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cost, "MEMORY_LIMIT", GiB)
    image = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (20000, 20000, 3))
    e = _refused(lambda: Segmenter(rgb_onnx).predict(image))
    assert e.needed == 20000 * 20000 * (4 * 3 + 5)
    assert "float32 probabilities of 3 classes" in str(e)


def test_the_limit_is_exact_and_an_image_within_it_is_segmented(
    seg: Segmenter, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = np.random.default_rng(0).integers(0, 255, (60, 70), np.uint8)
    need = cost.predict_bytes([image.shape], 2, False)
    assert need == 60 * 70 * 13
    monkeypatch.setattr(cost, "MEMORY_LIMIT", need)
    mask = seg.segment(image)
    assert mask.shape == (60, 70) and mask.dtype == np.uint8
    monkeypatch.setattr(cost, "MEMORY_LIMIT", need - 1)
    e = _refused(lambda: seg.segment(image))
    assert (e.needed, e.available) == (need, need - 1)


def test_the_path_the_message_names_gives_the_same_mask(
    seg: Segmenter, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("dask")
    from unet_edge.paths.dask import segment_dask

    image = np.random.default_rng(1).integers(0, 255, (700, 500), np.uint8)
    whole = seg.segment(image)
    monkeypatch.setattr(cost, "MEMORY_LIMIT", 1 << 20)  # too little for it in memory
    _refused(lambda: seg.segment(image))
    windowed = segment_dask(image, segmenter=seg, chunk=256).compute(scheduler="synchronous")
    assert np.array_equal(windowed, whole)


def test_available_memory_is_what_linux_says() -> None:
    meminfo = Path("/proc/meminfo")
    if not meminfo.is_file():
        pytest.skip("not Linux")
    available = cost.available_memory()
    total = next(
        int(line.split()[1]) * 1024
        for line in meminfo.read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    assert available is not None and 0 < available <= total
