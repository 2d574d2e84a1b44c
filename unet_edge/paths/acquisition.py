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

Feedback: ``on_result`` may return an ``MDAEvent`` or a list of them (or call
:meth:`Acquisition.queue`); they join the running acquisition when it was
started on :meth:`Acquisition.events`, the queue iterator pymmcore-plus's
runner supports (``core.mda.run(iterator)``: a plain iterator is run as given,
event by event). Queued events go before the rest of the planned ones.

pymmcore-plus and useq are imported lazily; the runtime imports without them.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import DropPolicy, look_up
from ..errors import ConfigError, InputError
from .stream import Outcome

if TYPE_CHECKING:
    from ..runtime import Segmenter

#: Bytes of frames that may wait for the model before the drop policy applies.
DEFAULT_MEMORY_BUDGET = 1 << 30
_POLL = 0.05  # seconds between checks of the stop flag while waiting
_END = object()  # the event iterator is exhausted


@dataclass(frozen=True)
class AcquiredResult(Outcome):
    """The outcome of one acquired frame.

    Attributes:
        index: arrival position of the frame in this acquisition (0-based).
        event: the ``useq.MDAEvent`` the frame belongs to.
        mask: (H, W) uint8 class indices (as :meth:`Segmenter.segment`), or None
            if the frame failed or was dropped.
        labels: (H, W) uint32 instance labels when ``watch(labels=True)``, else None.
        latency: seconds from the frame's arrival (``frameReady``) to its result
            (None for dropped frames).
        metadata: the frame metadata pymmcore-plus sent with it.
        dropped: True if ``drop="oldest"`` discarded the frame unprocessed.
        error: the exception that made this frame fail (None on success).
    """

    index: int
    event: Any
    mask: np.ndarray | None
    labels: np.ndarray | None
    latency: float | None
    metadata: dict[str, Any]
    dropped: bool = False
    error: Exception | None = None


@dataclass
class _Frame:
    index: int
    arrival: float
    image: np.ndarray | None  # None once dropped: the worker reports it in its place
    event: Any
    metadata: dict[str, Any]


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
    ) -> None:
        self._core, self._seg, self._labels, self._on_result = core, seg, labels, on_result
        self._max_queue, self._budget, self._drop = limits
        self._event_type = event_type
        self._cond = threading.Condition()
        self._waiting: deque[_Frame] = deque()
        self._waiting_bytes = 0
        self._n_waiting = 0  # frames in _waiting that still hold their image
        self._results: dict[int, AcquiredResult] = {}
        self._feedback: deque[Any] = deque()
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
            self._finished = False

    def _on_finished(self, *_: Any) -> None:
        with self._cond:
            self._finished = True
            self._cond.notify_all()

    def _on_frame(self, image: np.ndarray, event: Any, metadata: Any = None) -> None:
        arrival = time.perf_counter()
        # the camera may reuse its buffer for the next frame: keep a copy
        frame = np.array(image, copy=True)
        with self._cond:
            if self._closed:
                return
            self._make_room(frame.nbytes)
            if self._closed:  # closed while this frame waited for room
                return
            item = _Frame(self._arrived, arrival, frame, event, dict(metadata or {}))
            self._arrived += 1
            self._waiting.append(item)
            self._n_waiting += 1
            self._waiting_bytes += frame.nbytes
            self._cond.notify_all()

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
                pred = self._seg.analyze(image)
                mask = pred.mask
                labels = pred.labels if self._labels else None
                latency = time.perf_counter() - item.arrival
                result = AcquiredResult(
                    item.index, item.event, mask, labels, latency, item.metadata
                )
            except Exception as exc:  # a bad frame fails alone; the acquisition goes on
                result = AcquiredResult(
                    item.index, item.event, None, None, None, item.metadata, error=exc
                )
            self._store(result, callback=True)

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
        """Add ``useq.MDAEvent``s (one, an iterable of them, or None) to the running
        acquisition; they are acquired next when it runs on :meth:`events`."""
        if events is None:
            return
        if isinstance(events, self._event_type):
            batch = [events]
        elif isinstance(events, Iterable) and not isinstance(events, (str, bytes)):
            batch = list(events)
        else:
            batch = [events]  # refused just below, with its type
        for ev in batch:
            if not isinstance(ev, self._event_type):
                raise InputError(
                    f"an acquisition can only queue useq.MDAEvent objects, received "
                    f"{type(ev).__name__}; return MDAEvent(...) or a list of them from on_result"
                )
        with self._cond:
            self._feedback.extend(batch)
            self._cond.notify_all()

    def events(self, planned: Iterable[Any] = ()) -> Iterator[Any]:
        """The events to run, for ``core.mda.run(acq.events(sequence))``: queued events
        first, then the ``planned`` ones (an ``MDASequence`` or events); it ends when
        both are exhausted and every acquired frame's ``on_result`` has run."""
        planned_it: Iterator[Any] | None = iter(planned)
        while True:
            event = self._take_queued(wait=planned_it is None)
            if event is _END:
                return
            if event is None and planned_it is not None:
                event = next(planned_it, None)
                if event is None:
                    planned_it = None
                    continue
            yield event

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
) -> Acquisition:
    """Segment every frame of ``core``'s MDA as it arrives (see the module docstring).

    Args:
        core: a pymmcore-plus ``CMMCorePlus`` (or ``UniMMCore``); call before ``core.mda.run``.
        seg: the Segmenter; used only by the worker thread from now on.
        labels: also compute instance labels (uint32) for each frame.
        on_result: called on the worker thread with each :class:`AcquiredResult`, in
            order; may return ``MDAEvent``s to add to the acquisition.
        max_queue: at most this many frames wait (None: only the memory budget bounds them).
        memory_budget: bytes of frames that may wait for the model.
        drop: ``"none"`` (wait for room: every frame is kept) or ``"oldest"``.
    """
    event_type = _import_useq().MDAEvent
    signals = getattr(getattr(core, "mda", None), "events", None)
    if signals is None or not hasattr(signals, "frameReady"):
        raise InputError(
            f"watch() needs a pymmcore-plus core (CMMCorePlus or UniMMCore), "
            f"received {type(core).__name__}, which has no mda.events.frameReady"
        )
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
    return Acquisition(core, seg, labels, on_result, (max_queue, memory_budget, policy), event_type)


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
