"""The mask, probabilities and overlay of one image segmented in memory, with its axes.

What the file's axes were (:mod:`unet_edge.io.axes`) is what the outputs
keep: a time series gives a ``TYX`` mask and ``TCYX`` probabilities, a T x Z
hyperstack ``TZYX`` and ``TZCYX``, one image ``YX`` and ``CYX``. The
probabilities' channels carry the model's class names (ImageJ slice labels,
OME ``Channel Name``). The overlay of one image is a PNG; of a stack, an RGB
ImageJ TIFF with one page per slice (``NAME_overlay.tif``, axes ``TYXS``,
``ZYXS`` or ``TZYXS``), so that every slice is shown, not the first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import io, processing
from ..imagemeta import Calibration, Interval

if TYPE_CHECKING:
    from ..io.axes import Arranged
    from ..prediction import Prediction

Writer = Callable[[Path], object]


def image_writers(
    arranged: Arranged,
    prediction: Prediction,
    class_names: Sequence[str],
    provenance: dict[str, Any],
    calibration: Calibration | None,
    ome: bool = False,
    interval: Interval | None = None,
) -> dict[str, Writer]:
    """One writer (path -> file) for each of ``"mask"``, ``"probabilities"`` and
    ``"overlay"`` of an image whose frames are ``arranged`` and whose per-frame results
    are ``prediction`` ((N, K, H, W) probabilities for a stack of N frames).

    TIFFs are ImageJ hyperstacks (OME-TIFF if ``ome``; the overlay is always ImageJ)
    with ``calibration`` and ``provenance`` (a time series' ``interval`` too, when the
    calibration has none); a mask path not ending in ``.tif`` is a PNG.
    """
    found = arranged.layout
    classes = len(class_names)
    mask = arranged.restack(processing.mask_to_image(prediction.mask, classes))
    probs = arranged.restack(prediction.probabilities)
    tiff: dict[str, Any] = {"calibration": calibration, "ome": ome, "interval": interval}

    def write_mask(path: Path) -> object:
        if path.suffix != ".tif":
            return io.write_png(path, mask, provenance)
        axes = found.mask_axes
        return io.write_tiff(path, mask, provenance, axes=axes, compression="zlib", **tiff)

    def write_probabilities(path: Path) -> object:
        axes, names = found.probability_axes, class_names
        return io.write_tiff(path, probs, provenance, axes=axes, channel_names=names, **tiff)

    def write_overlay(path: Path) -> object:
        return write_overlays(path, arranged, prediction.mask, provenance, calibration, interval)

    return {"mask": write_mask, "probabilities": write_probabilities, "overlay": write_overlay}


def write_overlays(
    path: Path,
    arranged: Arranged,
    mask: np.ndarray,
    provenance: dict[str, Any],
    calibration: Calibration | None = None,
    interval: Interval | None = None,
) -> Path:
    """The overlay (:func:`unet_edge.processing.overlay`) of every frame of ``arranged``
    with its ``mask`` ((H, W), or (N, H, W) for a stack): a PNG for one image, else an
    RGB ImageJ TIFF with the stack's axes (``TYXS``, ``ZYXS``, ``TZYXS``)."""
    found = arranged.layout
    if not found.is_stack:
        return io.write_png(path, processing.overlay(arranged.frames, mask), provenance)
    frames = zip(arranged.frames, mask, strict=True)
    pictures = np.stack([processing.overlay(f, m) for f, m in frames])
    return io.write_tiff(
        path,
        arranged.restack(pictures),
        provenance,
        axes=found.overlay_axes,
        calibration=calibration,
        interval=interval,
        photometric="rgb",
        compression="zlib",
    )
