"""What an acquisition hands back and what may be handed back to it: the per-frame
:class:`AcquiredResult` that :func:`unet_edge.paths.acquisition.watch` delivers, and
the :class:`Skip` decision an ``on_result`` may return to drop planned events."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError
from .stream import Outcome

if TYPE_CHECKING:
    from ..domain import Quality


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
        error: the exception that made this frame fail (None on success); when only
            writing its files failed, ``mask`` is kept and ``files`` is empty.
        files: the files written for this frame (``watch(output=...)``), mask first.
        quality: how the frame compares with the model's training images
            (:class:`unet_edge.domain.Quality`: ``.score``, ``.in_domain``, ``.reason``);
            None when the model has no domain statistics or the frame has no mask.
    """

    index: int
    event: Any
    mask: np.ndarray | None
    labels: np.ndarray | None
    latency: float | None
    metadata: dict[str, Any]
    dropped: bool = False
    error: Exception | None = None
    files: tuple[Path, ...] = ()
    quality: Quality | None = None


@dataclass(frozen=True)
class Skip:
    """A feedback decision: drop the planned events not yet acquired whose index matches
    every given axis, e.g. ``Skip(p=3)`` (position 3) or ``Skip(p=1, t=4)``.

    ``on_result`` returns it (alone or in a list with ``MDAEvent``s); it acts on the
    planned events of :meth:`Acquisition.events` only, not on queued ones.
    """

    index: dict[str, int]

    def __init__(self, **index: int) -> None:
        if not index or not all(_whole(v) for v in index.values()):
            raise InputError(
                f"Skip needs one or more axis=integer pairs, e.g. Skip(p=3), received {index!r}"
            )
        object.__setattr__(self, "index", dict(index))

    def __hash__(self) -> int:  # the dict field is not hashable; its items are
        return hash(tuple(sorted(self.index.items())))

    def matches(self, event: Any) -> bool:
        """Whether ``event`` (a ``useq.MDAEvent``) has every axis value of this skip."""
        got = getattr(event, "index", None) or {}
        return all(got.get(k) == v for k, v in self.index.items())


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
