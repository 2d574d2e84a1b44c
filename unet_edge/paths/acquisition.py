"""Segment a pymmcore-plus acquisition (MDA) as its frames arrive, and feed decisions back.

::

    acquisition thread --frameReady--> [waiting frames: memory budget] --worker--> results
                                                                             \\--> on_result
                                                                                   -> new events

:func:`watch` connects to ``core.mda.events.frameReady`` before ``core.mda.run``.
The handler only copies the frame into the waiting list (no model work on the
acquisition thread, so the MDA's timing is the camera's, not the model's); one
worker thread runs the :class:`~unet_edge.runtime.Segmenter` on the frames in
arrival order. The list keeps every frame (``drop="none"``) until the waiting
frames would pass ``memory_budget`` bytes or ``max_queue`` frames; then the
acquisition thread waits for room (back-pressure), or with ``drop="oldest"``
the oldest waiting frame is discarded and its result is marked dropped.

Feedback: ``on_result`` may return an ``MDAEvent``, a :class:`Skip` or a list
of them (or pass them to :meth:`Acquisition.queue`); they change the running
acquisition when it was started on :meth:`Acquisition.events`, the queue
iterator pymmcore-plus's runner supports (``core.mda.run(iterator)``: a plain
iterator is run as given, event by event). Queued events go before the rest of
the planned ones; a ``Skip(p=3)`` drops the planned events whose index has
``p == 3`` that the runner has not taken yet (:attr:`Acquisition.skipped`).

Outputs: with ``output=FOLDER`` each frame's mask (and labels) is written there
on the worker thread, named by its event's index and calibrated with the core's
pixel size (:mod:`unet_edge.paths.acquisition_output`).

pymmcore-plus and useq are imported lazily; the runtime imports without them.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import DropPolicy, look_up
from ..errors import ConfigError, InputError
from .acquisition_output import FrameWriter
from .acquisition_results import AcquiredResult, Skip

if TYPE_CHECKING:
    from ..runtime import Segmenter

#: Bytes of frames that may wait for the model before the drop policy applies.
DEFAULT_MEMORY_BUDGET = 1 << 30
_POLL = 0.05  # seconds between checks of the stop flag while waiting
_END = object()  # the event iterator is exhausted


@dataclass
class _Frame:
    index: int
    arrival: float
    image: np.ndarray | None  # None once dropped: the worker reports it in its place
    event: Any
    metadata: dict[str, Any]
    pixel_size_um: float | None = None


OnResult = Callable[[AcquiredResult], Any]


class Acquisition:
    """The handle :func:`watch` returns; use it as a context manager (it closes)."""

    def __init__(
        self,
        core: Any,
        seg: Segmenter,
        labels: bool,
        on_result: OnResult | None,
        limits: tuple[int | None, int, DropPolicy],
        event_type: type,
        writer: FrameWriter | None = None,
        rescale: bool = False,
    ) -> None:
        self._core, self._seg, self._labels, self._on_result = core, seg, labels, on_result
        self._max_queue, self._budget, self._drop = limits
        self._event_type, self._writer, self._rescale = event_type, writer, rescale
        self._cond = threading.Condition()
        self._waiting: deque[_Frame] = deque()
        self._waiting_bytes = 0
        self._n_waiting = 0  # frames in _waiting that still hold their image
        self._results: dict[int, AcquiredResult] = {}
        self._feedback: deque[Any] = deque()
        self._skips: list[Skip] = []
        self._t0: float | None = None  # when the sequence started
        self._lockstep = False  # events(wait_for_results=True)
        #: planned events dropped by a :class:`Skip`, in planned order
        self.skipped: list[Any] = []
        self._arrived = self._done = 0
        self._finished = self._closed = False
        self.callback_errors: list[Exception] = []
        self._worker = threading.Thread(
            target=self._work, name="unet-edge-acquisition", daemon=True
        )
        signals = core.mda.events
        signals.frameReady.connect(self._on_frame)
        signals.sequenceStarted.connect(self._on_started)
        signals.sequenceFinished.connect(self._on_finished)
        self._worker.start()

    # -- acquisition thread -------------------------------------------------------------

    def _on_started(self, *_: Any) -> None:
        with self._cond:
            self._t0 = time.perf_counter()  # what min_start_time counts from
            self._finished = False

    def _on_finished(self, *_: Any) -> None:
        with self._cond:
            self._finished = True
            self._cond.notify_all()

    def _on_frame(self, image: np.ndarray, event: Any, metadata: Any = None) -> None:
        arrival = time.perf_counter()
        # the camera may reuse its buffer for the next frame: keep a copy
        frame = np.array(image, copy=True)
        meta = dict(metadata or {})
        wanted = self._writer is not None or self._rescale
        pixel = self._pixel_size(meta) if wanted else None
        with self._cond:
            if self._closed:
                return
            self._make_room(frame.nbytes)
            if self._closed:  # closed while this frame waited for room
                return
            item = _Frame(self._arrived, arrival, frame, event, meta, pixel)
            self._arrived += 1
            self._waiting.append(item)
            self._n_waiting += 1
            self._waiting_bytes += frame.nbytes
            self._cond.notify_all()

    def _pixel_size(self, metadata: dict[str, Any]) -> float | None:
        """The frame's pixel size in µm: pymmcore-plus puts ``core.getPixelSizeUm()`` in
        the metadata at capture; asked of the core here when it did not."""
        size = metadata.get("pixel_size_um")
        if size is None:
            try:
                size = self._core.getPixelSizeUm()
            except Exception:  # a core without pixel-size support: write uncalibrated
                return None
        return float(size) if isinstance(size, (int, float)) else None

    def _full(self, nbytes: int) -> bool:
        if not self._n_waiting:
            return False  # a frame larger than the whole budget still goes through, alone
        too_many = self._max_queue is not None and self._n_waiting >= self._max_queue
        return too_many or self._waiting_bytes + nbytes > self._budget

    def _make_room(self, nbytes: int) -> None:
        """Drop the oldest waiting frames or wait for the worker (called holding the lock).

        A dropped frame stays in its place without its image, so that its result (and
        ``on_result``) comes on the worker thread in acquisition order."""
        while self._full(nbytes) and not self._closed:
            if self._drop is DropPolicy.OLDEST:
                old = next(f for f in self._waiting if f.image is not None)
                self._release(old)
            else:
                self._cond.wait(_POLL)

    def _release(self, item: _Frame) -> None:
        """Give back a waiting frame's share of the budget (called holding the lock)."""
        if item.image is not None:
            self._waiting_bytes -= item.image.nbytes
            self._n_waiting -= 1
            item.image = None

    # -- worker thread -----------------------------------------------------------------

    def _next_frame(self) -> tuple[_Frame, np.ndarray | None] | None:
        with self._cond:
            while not self._waiting:
                if self._closed:
                    return None
                self._cond.wait(_POLL)
            item = self._waiting.popleft()
            image = item.image
            self._release(item)
            self._cond.notify_all()
            return item, image

    def _work(self) -> None:
        while (taken := self._next_frame()) is not None:
            item, image = taken
            if image is None:
                self._store(_dropped(item), callback=True)
                continue
            try:
                # at the model's pixel size when asked and the core knows the frame's
                rescale = item.pixel_size_um if self._rescale and item.pixel_size_um else None
                pred = self._seg.analyze(image, rescale)
                mask = pred.mask
                labels = pred.labelled(self._seg.info.labelling) if self._labels else None
                quality = pred.quality[0] if pred.quality else None
                latency = time.perf_counter() - item.arrival
                result = AcquiredResult(
                    item.index, item.event, mask, labels, latency, item.metadata, quality=quality
                )
            except Exception as exc:  # a bad frame fails alone; the acquisition goes on
                result = AcquiredResult(
                    item.index, item.event, None, None, None, item.metadata, error=exc
                )
            if self._writer is not None and result.mask is not None:
                result = self._write(item, result)
            self._store(result, callback=True)

    def _write(self, item: _Frame, result: AcquiredResult) -> AcquiredResult:
        """``result`` with the files written for it, or with the error that stopped them."""
        assert self._writer is not None and result.mask is not None
        event = item.event
        dump = getattr(event, "model_dump", None)
        prov = {"event": dump(mode="json", exclude_unset=True) if dump else repr(event)}
        if result.quality is not None:  # unet_edge.domain: like the training images?
            prov["quality"] = result.quality.to_dict()
        try:
            stem = self._writer.stem(event, item.index)
            files = self._writer.write(stem, result.mask, result.labels, item.pixel_size_um, prov)
        except Exception as exc:  # a full disk fails this frame's files, not the acquisition
            return dataclasses.replace(result, error=exc)
        return dataclasses.replace(result, files=files)

    def _store(self, result: AcquiredResult, callback: bool) -> None:
        """Record a result, after ``on_result`` (whose events join the acquisition)."""
        if callback and self._on_result is not None:
            try:
                self.queue(self._on_result(result))
            except Exception as exc:  # reported by wait(); the acquisition goes on
                self.callback_errors.append(exc)
        with self._cond:
            self._results[result.index] = result
            self._done += 1
            self._cond.notify_all()

    # -- caller ------------------------------------------------------------------------

    def queue(self, events: Any) -> None:
        """Add ``useq.MDAEvent``s and :class:`Skip` decisions (one, an iterable of them, or
        None) to the running acquisition: events are acquired next and skips drop planned
        events, when it runs on :meth:`events`."""
        if events is None:
            return
        if isinstance(events, (self._event_type, Skip)):
            batch = [events]
        elif isinstance(events, Iterable) and not isinstance(events, (str, bytes)):
            batch = list(events)
        else:
            batch = [events]  # refused just below, with its type
        for ev in batch:
            if not isinstance(ev, (self._event_type, Skip)):
                raise InputError(
                    f"an acquisition can only queue useq.MDAEvent or Skip objects, received "
                    f"{type(ev).__name__}; return MDAEvent(...), Skip(p=...) or a list of "
                    "them from on_result"
                )
        with self._cond:
            self._skips.extend(ev for ev in batch if isinstance(ev, Skip))
            self._feedback.extend(ev for ev in batch if not isinstance(ev, Skip))
            self._cond.notify_all()

    def events(
        self, planned: Iterable[Any] = (), *, wait_for_results: bool = False
    ) -> Iterator[Any]:
        """The events to run, for ``core.mda.run(acq.events(sequence))``: queued events
        first, then the ``planned`` ones (an ``MDASequence`` or events); it ends when
        both are exhausted and every acquired frame's ``on_result`` has run.

        A planned event with a ``min_start_time`` is handed to the runner only at that
        time (the runner would wait for it anyway), so that the results that come in
        meanwhile can still queue events before it or skip it. ``wait_for_results``:
        each planned event also waits until every frame so far has its result, so every
        decision applies to the next event (the camera then waits for the model)."""
        self._lockstep = wait_for_results
        planned_it: Iterator[Any] | None = iter(planned)
        pending: Any = None  # a planned event waiting for its start time
        while True:
            event = self._take_queued(wait=planned_it is None and pending is None)
            if event is _END:
                return
            if event is None:
                if pending is None:
                    pending = next(planned_it, None) if planned_it is not None else None
                    if pending is None:
                        planned_it = None
                        continue
                if not self._held(pending):  # feedback came first: it goes first
                    continue
                event, pending = pending, None
                if self._skipping(event):
                    continue
            yield event

    def _held(self, event: Any) -> bool:
        """Wait until planned ``event``'s start time (from the sequence's start); False
        if feedback was queued meanwhile (the event is due later)."""
        due = getattr(event, "min_start_time", None) or 0.0
        with self._cond:
            while not self._closed:
                left = self._t0 + due - time.perf_counter() if self._t0 is not None else 0.0
                if self._feedback:  # queued events go before planned ones
                    return False
                if left <= 0 and not (self._lockstep and self._done < self._arrived):
                    break
                self._cond.wait(min(left, _POLL) if left > 0 else _POLL)
            return True

    def _skipping(self, event: Any) -> bool:
        """Whether a queued :class:`Skip` drops planned ``event`` (recorded in ``skipped``)."""
        with self._cond:
            if not any(s.matches(event) for s in self._skips):
                return False
            self.skipped.append(event)
            return True

    def _take_queued(self, wait: bool) -> Any:
        """The next queued event; None if there is none and ``wait`` is False; ``_END``
        once nothing is queued and no frame can still queue one (all results are in)."""
        with self._cond:
            while not self._feedback:
                if not wait:
                    return None
                if self._closed or self._done == self._arrived:
                    return _END
                self._cond.wait(_POLL)
            return self._feedback.popleft()

    @property
    def results(self) -> list[AcquiredResult]:
        """Finished results so far, in acquisition (arrival) order."""
        with self._cond:
            return [self._results[i] for i in sorted(self._results)]

    @property
    def n_dropped(self) -> int:
        with self._cond:
            return sum(r.dropped for r in self._results.values())

    def wait(self, timeout: float | None = None) -> list[AcquiredResult]:
        """Wait until the acquisition has finished and every frame has its result (or the
        handle is closed); returns :attr:`results`. Raises the first error an ``on_result``
        raised, or :class:`TimeoutError` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not (self._closed or (self._finished and self._done == self._arrived)):
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(
                        f"the acquisition did not finish within {timeout} s "
                        f"({self._done} of {self._arrived} frames segmented)"
                    )
                self._cond.wait(_POLL)
        if self.callback_errors:
            raise self.callback_errors[0]
        return self.results

    def close(self) -> None:
        """Disconnect from the core and stop the worker after the frame in progress;
        frames still waiting are discarded (marked dropped). Closing twice is harmless."""
        with self._cond:
            if self._closed:
                return
        signals = self._core.mda.events
        for signal, slot in (
            (signals.frameReady, self._on_frame),
            (signals.sequenceStarted, self._on_started),
            (signals.sequenceFinished, self._on_finished),
        ):
            signal.disconnect(slot)
        with self._cond:
            self._closed = True
            left = list(self._waiting)
            self._waiting.clear()
            for f in left:
                self._release(f)
            self._cond.notify_all()
        self._worker.join()
        for f in left:
            self._store(_dropped(f), callback=False)

    def __enter__(self) -> Acquisition:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def watch(
    core: Any,
    seg: Segmenter,
    *,
    labels: bool = False,
    on_result: OnResult | None = None,
    max_queue: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    drop: DropPolicy | str = DropPolicy.NONE,
    output: str | os.PathLike[str] | None = None,
    format: str = "tiff",
    overwrite: bool = False,
    rescale: bool = False,
) -> Acquisition:
    """Segment every frame of ``core``'s MDA as it arrives (see the module docstring).

    Args:
        core: a pymmcore-plus ``CMMCorePlus`` (or ``UniMMCore``); call before ``core.mda.run``.
        seg: the Segmenter; used only by the worker thread from now on.
        labels: also compute instance labels (uint32) for each frame.
        on_result: called on the worker thread with each :class:`AcquiredResult`, in
            order; may return ``MDAEvent``s to add to the acquisition and :class:`Skip`s.
        max_queue: at most this many frames wait (None: only the memory budget bounds them).
        memory_budget: bytes of frames that may wait for the model.
        drop: ``"none"`` (wait for room: every frame is kept) or ``"oldest"``.
        output: a folder (made if missing) for each frame's mask and labels files.
        format: ``"tiff"`` (ImageJ TIFF) or ``"ome-zarr"`` (NGFF 0.5, needs zarr 3).
        overwrite: replace the files of an earlier acquisition in ``output``
            (else :class:`~unet_edge.errors.OutputExistsError` if it holds any).
        rescale: segment each frame at the pixel size the model was trained at, from the
            core's pixel size for that frame (``Segmenter.analyze(frame, pixel_size)``;
            masks come back on the frame's grid); frames without one run as they are.
    """
    event_type = _import_useq().MDAEvent
    signals = getattr(getattr(core, "mda", None), "events", None)
    if signals is None or not hasattr(signals, "frameReady"):
        raise InputError(
            f"watch() needs a pymmcore-plus core (CMMCorePlus or UniMMCore), "
            f"received {type(core).__name__}, which has no mda.events.frameReady"
        )
    limits = _limits(max_queue, memory_budget, drop)
    if rescale and seg.info.pixel_size is None:
        raise ConfigError(
            f"rescale=True, but the model {seg.info.name!r} does not record the pixel size "
            "it was trained at, so there is nothing to rescale to; leave rescale off",
            option="rescale",
        )
    writer = None if output is None else FrameWriter(output, format, seg, overwrite)
    return Acquisition(core, seg, labels, on_result, limits, event_type, writer, rescale)


def _limits(
    max_queue: int | None, memory_budget: int, drop: DropPolicy | str
) -> tuple[int | None, int, DropPolicy]:
    """The queue limits of :func:`watch`, checked."""
    policy = look_up(DropPolicy, drop, "drop policy")
    if max_queue is not None and not _positive_int(max_queue):
        raise ConfigError(
            f"max_queue must be a positive integer or None, received {max_queue!r}",
            option="max_queue",
        )
    if not _positive_int(memory_budget):
        raise ConfigError(
            f"memory_budget must be a positive number of bytes, received {memory_budget!r}",
            option="memory_budget",
        )
    return max_queue, memory_budget, policy


def _import_useq() -> Any:
    try:
        import useq
    except ModuleNotFoundError:
        raise InputError(
            "segmenting a pymmcore-plus acquisition needs pymmcore-plus "
            "(pip install 'unet-edge[mmcore]')",
            option="mmcore",
        ) from None
    return useq


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _dropped(item: _Frame) -> AcquiredResult:
    return AcquiredResult(item.index, item.event, None, None, None, item.metadata, dropped=True)
