"""What the napari widget computes, without napari or Qt: a layer's data segmented tile by tile,
with progress, and the layers that show the result.

:func:`segment_steps` is :meth:`unet_edge.Segmenter.analyze_steps`: the steps
``Segmenter.analyze`` itself runs, one batch of tiles at a time, so its mask
equals ``Segmenter.segment`` bit for bit; between batches it yields
``(tiles done, tiles in all)``, where a worker thread reports progress and can
stop.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from typing import Any

import numpy as np

from ..imagemeta import Calibration
from ..objects.table import ObjectTable
from ..runtime import Prediction, Segmenter

LayerData = tuple[np.ndarray, dict[str, Any], str]
"""napari's layer data tuple: (data, keyword arguments of ``viewer.add_<kind>``, kind)."""


def segment_steps(
    seg: Segmenter, image: Any, pixel_size: Any = None
) -> Generator[tuple[int, int], None, Prediction]:
    """Segment ``image`` (a frame or a stack, as for ``Segmenter.analyze``) one batch at a time.

    Yields ``(done, total)`` tiles, first ``(0, total)``; returns the
    :class:`~unet_edge.runtime.Prediction` (probabilities and the scaling of each frame):
    :meth:`Segmenter.analyze_steps`, the steps :meth:`Segmenter.analyze` itself runs.
    ``pixel_size``: the layer's (:func:`layer_calibration`), to segment at the model's.
    """
    return (yield from seg.analyze_steps(np.asarray(image), pixel_size))


def result_layers(
    pred: Prediction,
    name: str,
    place: Mapping[str, Any],
    provenance: Mapping[str, Any],
    classes: Sequence[str],
    probabilities: bool = False,
    objects: tuple[np.ndarray, ObjectTable] | None = None,
) -> list[LayerData]:
    """The mask as a Labels layer (and the probabilities as one Image layer per class, and
    the ``objects`` of :func:`objects_of`: instance labels with their measurements).

    ``place`` holds the input layer's ``scale``, ``translate`` (and ``units``)
    per axis of its data; the mask (H, W) or (Z, H, W) takes the leading ones
    (a channel axis, if any, is last), so it lies on the input in world
    coordinates. ``provenance`` goes into the layers' ``metadata``.
    """
    ndim = pred.mask.ndim
    where = {k: tuple(v)[:ndim] for k, v in place.items() if v is not None}
    meta = {"provenance": dict(provenance)}
    layers = [mask_layer(pred.mask, name, where, meta)]
    if probabilities:
        layers.append(probability_layer(pred.probabilities, name, classes, where, meta))
    if objects is not None:
        layers.append(labels_layer(objects[0], name, where, meta, objects[1]))
    return layers


def objects_of(
    pred: Prediction, image: np.ndarray, place: Mapping[str, Any]
) -> tuple[np.ndarray, ObjectTable]:
    """Instance labels of a prediction (:attr:`Prediction.labels`) and their measurements
    (in µm when the input layer's ``scale`` and ``units`` say micrometres or another length,
    else in pixels; the mean intensity from ``image`` when it is a plain (Z,) H, W image)."""
    from ..objects.measure import measure_labels, measure_stack

    labels = pred.labels
    prob = pred.probabilities[..., list(pred.object_classes or (1,)), :, :].sum(axis=-3)
    raw = image if image.shape[: labels.ndim] == labels.shape else None
    cal = layer_calibration(place, labels.ndim)
    if labels.ndim == 3:
        return labels, measure_stack(labels, prob=prob, raw=raw, calibration=cal)
    return labels, measure_labels(labels, prob=prob, raw=raw, calibration=cal)


#: napari's (pint's) unit names -> OME symbols.
_SYMBOLS = {"micrometer": "µm", "nanometer": "nm", "millimeter": "mm", "angstrom": "Å"}


def layer_calibration(place: Mapping[str, Any], ndim: int) -> Calibration | None:
    """The pixel size of the last two axes of a layer placed by ``place`` (``scale`` and
    ``units`` per axis), or None when its units are not a length unet-edge converts."""
    scale, units = tuple(place.get("scale") or ())[:ndim], tuple(place.get("units") or ())[:ndim]
    if len(scale) < 2 or len(units) < 2 or units[-1] != units[-2]:
        return None
    return Calibration.make(scale[-1], scale[-2], _SYMBOLS.get(str(units[-1]), str(units[-1])))


def labels_layer(
    labels: np.ndarray,
    name: str,
    where: Mapping[str, Any],
    meta: dict[str, Any],
    table: ObjectTable | None = None,
) -> LayerData:
    """Instance labels (H, W) or (Z, H, W) as the Labels layer ``NAME labels``.

    For an image, ``table``'s columns become the layer's ``features`` (napari's
    table, one row per label: ``index`` is the label), which napari shows for
    the label under the pointer; a stack's ids repeat from slice to slice, so its
    table goes into the metadata (``"objects"``) instead.
    """
    kwargs: dict[str, Any] = {"name": f"{name} labels", **where, "metadata": dict(meta)}
    if table is not None and len(table.columns) and labels.ndim == 2:
        kwargs["features"] = {"index": table["label"], **table.columns}
    elif table is not None:
        kwargs["metadata"]["objects"] = {k: v.tolist() for k, v in table.columns.items()}
    return (labels, kwargs, "labels")


def mask_layer(
    mask: np.ndarray, name: str, where: Mapping[str, Any], meta: dict[str, Any]
) -> LayerData:
    """Class indices (H, W) or (Z, H, W) as the Labels layer ``NAME mask``; ``where``:
    ``scale``, ``translate``, ``units`` per axis; ``meta``: the layer's metadata."""
    return (mask, {"name": f"{name} mask", **where, "metadata": meta}, "labels")


def probability_layer(
    probs: np.ndarray,
    name: str,
    classes: Sequence[str],
    where: Mapping[str, Any],
    meta: dict[str, Any],
) -> LayerData:
    """Probabilities (K, H, W) or (Z, K, H, W) as one Image layer ``NAME p(class)`` per
    class (napari splits the channel axis); ``where`` per axis of one class's image."""
    kwargs = {
        "name": [f"{name} p({c})" for c in classes],
        "channel_axis": probs.ndim - 3,
        "contrast_limits": [0.0, 1.0],
        "blending": "additive",
        **where,
        "metadata": meta,
    }
    return (probs, kwargs, "image")


def provenance(seg: Segmenter, pred: Prediction, source: str) -> dict[str, Any]:
    """What made this result (as ``unet-edge run`` writes it into TIFFs), for layer metadata."""
    shape = pred.mask.shape[-2:]
    extra = {"rescale": pred.rescale} if pred.rescale else {}
    plan = seg.plan_for((shape[0], shape[1]))
    return seg.result_provenance(
        plan, pred.stats, source=source, quality=pred.quality_record(), **extra
    )


def domain_warning(seg: Segmenter, pred: Prediction, source: str) -> str | None:
    """The notification for a layer unlike the model's training data (None: it is alike, or
    the model has no training statistics): :meth:`unet_edge.domain.Guard.warning`."""
    return seg.guard.warning(source, pred.quality) if seg.guard else None
