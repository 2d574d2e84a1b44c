"""Streaming segmentation: frames in, masks out, on a pipeline of threads with bounded queues.

Four threads overlap the work of consecutive frames::

    source iterable --reader--> [inbox: max_queue] --prepare--> [1] --infer--> [1] --finish--> [1]
                                         (frame statistics, mirrored windows)   (stitch, argmax)

The three stages are the kernel's steps (:class:`unet_edge.tiling.TileRun`:
``batches``, the predictor, ``stitch``), run on separate threads.

and the consumer (the caller's thread, iterating :func:`stream`) takes finished
frames in input order. ONNX Runtime releases the GIL while it runs, so the
inference thread keeps the model busy while Python prepares the next frame and
stitches the previous one.

The inbox is the only queue longer than one item and the only place frames are
dropped. With ``drop="oldest"`` a reader that finds the inbox full throws away
the oldest waiting frame, so a source faster than the model never waits and
the latency of every processed frame stays below about ``max_queue + 4`` model
runs. With ``drop="none"`` the reader blocks, which pushes back on the source
(a camera would then buffer or lose frames itself).

Every input frame gets exactly one :class:`FrameResult`, in input order: a
mask, an error (a frame of the wrong shape, dtype or with NaN pixels fails
alone; the stream goes on), or a dropped marker. Stopping early (``break``,
``close()``, an exception in the consumer) stops and joins the threads; the
reader finishes the ``next()`` call it is blocked in first, so a source that
blocks forever keeps one daemon thread alive until it yields.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import processing, scale, tiling
from ..config import DropPolicy, look_up
from ..errors import DroppedFrameError, InputError

if TYPE_CHECKING:
    from ..domain import Quality
    from ..runtime import Segmenter

_POLL = 0.05  # seconds between checks of the stop flag while blocked on a queue
_JOIN_TIMEOUT = 5.0


class Outcome:
    """What every per-frame result offers (a stream's, an acquisition's): :attr:`ok` and
    :meth:`unwrap`. Subclasses are dataclasses with ``index``, ``mask`` and ``error``."""

    index: int
    mask: np.ndarray | None
    error: Exception | None

    @property
    def ok(self) -> bool:
        """Whether the frame has a mask (it neither failed nor was dropped)."""
        return self.mask is not None

    def unwrap(self) -> np.ndarray:
        """The mask; raises the frame's error (or :class:`DroppedFrameError`)."""
        if self.error is not None:
            raise self.error
        if self.mask is None:
            raise DroppedFrameError(f"frame {self.index} was dropped (drop='oldest')")
        return self.mask


@dataclass(frozen=True)
class FrameResult(Outcome):
    """The outcome of one input frame.

    Attributes:
        index: position of the frame in the source iterable (0-based).
        mask: (H, W) uint8 class indices, or None if the frame failed or was dropped.
        probabilities: (K, H, W) float32, only when the stream was asked for them.
        latency: seconds from the reader taking the frame from the source to
            the result being handed to the consumer (None for dropped frames).
        dropped: True if ``drop="oldest"`` discarded this frame unprocessed.
        n_dropped: frames dropped so far in this stream, this one included.
        error: the exception that made this frame fail (None on success).
        quality: how the frame compares with the model's training images
            (:class:`unet_edge.domain.Quality`; None when the model has no statistics
            or the frame was not segmented).
    """

    index: int
    mask: np.ndarray | None
    probabilities: np.ndarray | None
    latency: float | None
    dropped: bool
    n_dropped: int
    error: Exception | None = None
    quality: Quality | None = None


@dataclass
class _Job:
    index: int
    arrival: float
    frame: Any
    error: Exception | None = None
    run: tiling.TileRun | None = None
    batches: list[tuple[list[tiling.Tile], np.ndarray]] = field(default_factory=list)
    outputs: list[np.ndarray] = field(default_factory=list)
    mask: np.ndarray | None = None
    probabilities: np.ndarray | None = None
    grid: scale.Grid | None = None  # the frame's resampling to the model's pixel size
    seen: tuple[np.ndarray, processing.Scaling] | None = None  # for the domain guard
    quality: Quality | None = None


class _End:
    """Marks the end of the source; ``error`` is set if iterating the source raised."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class _Pipeline:
    def __init__(
        self,
        seg: Segmenter,
        frames: Iterable[Any],
        max_queue: int,
        drop: DropPolicy,
        shape: tuple[int, ...] | None,
        dtype: np.dtype[Any] | None,
        probabilities: bool,
        timestamps: bool,
    ) -> None:
        self.seg = seg
        self.frames = frames
        self.drop = drop
        self.shape = shape
        self.dtype = dtype
        self.keep_probabilities = probabilities
        self.timestamps = timestamps
        self.rescale: scale.Rescale | None = None  # set by stream(): every frame's
        self.stop = threading.Event()
        self.inbox: queue.Queue[Any] = queue.Queue(max_queue)
        self.tiles: queue.Queue[Any] = queue.Queue(1)
        self.outputs: queue.Queue[Any] = queue.Queue(1)
        self.done: queue.Queue[Any] = queue.Queue(1)
        self.dropped: deque[int] = deque()
        self.n_dropped = 0
        self.crash: BaseException | None = None
        self.threads = [
            threading.Thread(
                target=self._guard, args=(fn,), name=f"unet-edge-stream-{name}", daemon=True
            )
            for name, fn in (
                ("reader", self._read),
                ("prepare", self._prepare),
                ("infer", self._infer),
                ("finish", self._finish),
            )
        ]

    # -- plumbing ------------------------------------------------------------
    def _put(self, q: queue.Queue[Any], item: Any) -> bool:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q: queue.Queue[Any]) -> Any:
        while not self.stop.is_set():
            try:
                return q.get(timeout=_POLL)
            except queue.Empty:
                if self.crash is not None:
                    break
        return None

    def _guard(self, fn: Any) -> None:
        try:
            fn()
        except BaseException as e:  # a bug in a stage: stop everything, report to the consumer
            self.crash = e
            self.stop.set()

    def _stage(self, src: queue.Queue[Any], dst: queue.Queue[Any], work: Any) -> None:
        while True:
            job = self._get(src)
            if job is None:
                return
            if isinstance(job, _End):
                self._put(dst, job)
                return
            if job.error is None:
                try:
                    work(job)
                except Exception as e:  # this frame fails; the stream goes on
                    job.error = e
                    job.batches, job.outputs = [], []
            if not self._put(dst, job):
                return

    # -- stages --------------------------------------------------------------
    def _read(self) -> None:
        it = iter(self.frames)
        end = _End()
        try:
            index = 0
            while not self.stop.is_set():
                try:
                    frame = next(it)
                except StopIteration:
                    break
                except Exception as e:  # the source failed: results so far are still delivered
                    end = _End(e)
                    break
                if self.timestamps:
                    frame, arrival = _split_stamp(frame, index)
                else:
                    arrival = time.perf_counter()
                job = _Job(index, arrival, frame)
                index += 1
                if self.drop is DropPolicy.NONE:
                    if not self._put(self.inbox, job):
                        return
                    continue
                while True:
                    try:
                        self.inbox.put_nowait(job)
                        break
                    except queue.Full:
                        try:
                            old = self.inbox.get_nowait()
                        except queue.Empty:
                            continue
                        self.dropped.append(old.index)
            self._put(self.inbox, end)
        finally:
            close = getattr(it, "close", None)
            if callable(close):
                close()

    def _check(self, frame: Any) -> None:
        if not isinstance(frame, np.ndarray):
            raise InputError(f"frame is a {type(frame).__name__}, expected a numpy array")
        if self.shape is not None and frame.shape != self.shape:
            raise InputError(
                f"frame has shape {frame.shape}, but this stream's frames are {self.shape}; "
                "start a new stream for a different frame size"
            )
        if self.dtype is not None and frame.dtype != self.dtype:
            raise InputError(
                f"frame has pixel type {frame.dtype}, but this stream's frames are {self.dtype}; "
                "a different bit depth would change the normalisation"
            )

    def _prepare_one(self, job: _Job) -> None:
        frame = job.frame
        self._check(frame)
        picked = self.seg.pick_channel(frame)  # the Segmenter's channel, if it has one
        # each frame is normalised on its own statistics, as it arrives
        job.grid = self.rescale.grid(frame.shape[:2]) if self.rescale else None
        processing.frame_to_chw(picked, self.seg.info.channels)  # the shape check first
        # resampled to the model's pixel size (a grid), scaled on the frame's own pixels
        seen = picked if job.grid is None else job.grid.image(picked)
        job.seen = (seen, self.seg.scaling_for(picked))
        job.run = self.seg.frame_run(*job.seen)
        # the first good frame fixes whatever the caller did not
        self.shape = self.shape if self.shape is not None else frame.shape
        self.dtype = self.dtype if self.dtype is not None else frame.dtype
        job.frame = None
        job.batches = list(job.run.batches(reuse=False))

    def _prepare(self) -> None:
        self._stage(self.inbox, self.tiles, self._prepare_one)

    def _infer_one(self, job: _Job) -> None:
        job.outputs = [self.seg.predict_batch(b) for _, b in job.batches]

    def _infer(self) -> None:
        self._stage(self.tiles, self.outputs, self._infer_one)

    def _finish_one(self, job: _Job) -> None:
        run = job.run
        assert run is not None
        for (group, _), out in zip(job.batches, job.outputs, strict=True):
            run.stitch(group, out)
        job.batches, job.outputs, job.run = [], [], None
        guard, seen, job.seen = self.seg.guard, job.seen, None
        job.quality = guard.assess(*seen, run.result) if guard and seen else None
        result = run.result if job.grid is None else job.grid.back(run.result)
        job.mask = processing.to_mask(result)
        if self.keep_probabilities:
            job.probabilities = result

    def _finish(self) -> None:
        self._stage(self.outputs, self.done, self._finish_one)

    # -- the consumer side -----------------------------------------------------
    def _dropped_before(self, index: float) -> Iterator[FrameResult]:
        while self.dropped and self.dropped[0] < index:
            self.n_dropped += 1
            yield FrameResult(self.dropped.popleft(), None, None, None, True, self.n_dropped)

    def results(self) -> Iterator[FrameResult]:
        for t in self.threads:
            t.start()
        try:
            while True:
                job = self._get(self.done)
                if job is None:
                    if self.crash is not None:
                        raise self.crash
                    return
                if isinstance(job, _End):
                    yield from self._dropped_before(float("inf"))
                    if job.error is not None:
                        raise job.error
                    return
                yield from self._dropped_before(job.index)
                yield FrameResult(
                    job.index,
                    job.mask,
                    job.probabilities,
                    time.perf_counter() - job.arrival,
                    False,
                    self.n_dropped,
                    job.error,
                    job.quality,
                )
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        self.stop.set()
        for t in self.threads:
            if t.is_alive() and t is not threading.current_thread():
                t.join(_JOIN_TIMEOUT)


def stream(
    seg: Segmenter,
    frames: Iterable[Any],
    *,
    max_queue: int = 4,
    drop: DropPolicy | str = "oldest",
    shape: tuple[int, ...] | None = None,
    dtype: Any = None,
    probabilities: bool = False,
    timestamps: bool = False,
    pixel_size: Any = None,
) -> Iterator[FrameResult]:
    """Segment an iterable of frames on a thread pipeline; yield one result per frame, in order.

    Args:
        seg: an open :class:`~unet_edge.Segmenter` (shared safely with other threads).
        frames: any iterable of (H, W) or (H, W, C) uint8/uint16/float32 arrays,
            e.g. a camera generator. It is iterated on a background thread.
        max_queue: frames that may wait for the model (>= 1).
        drop: ``"oldest"`` (bounded latency; may drop) or ``"none"`` (never drops).
        shape, dtype: the frames' expected shape and pixel type. Given a shape,
            the model is warmed up at that size before the first frame. None:
            taken from the first valid frame. Later frames that differ give an
            error result (:class:`~unet_edge.InputError`) and the stream goes on.
        probabilities: also return (K, H, W) float32 probabilities per frame.
        timestamps: the source yields ``(frame, t)`` pairs, ``t`` the capture
            time in :func:`time.perf_counter` seconds; latency is then counted
            from capture (including time the frame waited in the source)
            instead of from the moment the reader took it.
        pixel_size: the frames' pixel size (µm or a Calibration), given once: each
            frame is segmented at the model's pixel size and its results resampled
            back to its grid (:mod:`unet_edge.scale`); None or ``"native"``: as they are.

    Threads start at the first ``next()``; leaving the loop early joins them.
    """
    policy = look_up(DropPolicy, drop, "drop policy")
    if not isinstance(frames, Iterable) or isinstance(frames, (str, bytes, np.ndarray)):
        raise InputError(
            f"frames must be an iterable of (H, W[, C]) arrays (a list, a generator), got "
            f"{type(frames).__name__}"
        )
    if not isinstance(max_queue, int) or max_queue < 1:
        raise InputError(f"max_queue must be a positive integer, got {max_queue!r}")
    want_shape = tuple(int(s) for s in shape) if shape is not None else None
    want_dtype = np.dtype(dtype) if dtype is not None else None
    seg.provider  # noqa: B018 - raises now, not in a thread, if the Segmenter is closed
    rescale = scale.resolve(seg.info.pixel_size, pixel_size, None)  # refused now, not per frame
    if want_shape is not None:
        hw = (want_shape[0], want_shape[1])
        seg.warmup(rescale.grid(hw).model_shape if rescale else hw)
    pipeline = _Pipeline(
        seg, frames, max_queue, policy, want_shape, want_dtype, probabilities, timestamps
    )
    pipeline.rescale = rescale
    return pipeline.results()


def _split_stamp(item: Any, index: int) -> tuple[Any, float]:
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], (float, int)):
        return item[0], float(item[1])
    # a malformed item fails as a frame (error result), it does not stop the stream
    return item, time.perf_counter()
