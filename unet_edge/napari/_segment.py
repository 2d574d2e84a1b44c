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
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import scale
from ..imagemeta import Calibration
from ..objects.table import ObjectTable
from ..runtime import Prediction, Segmenter

if TYPE_CHECKING:
    from ..metadata import PixelSize

LayerData = tuple[np.ndarray, dict[str, Any], str]
"""napari's layer data tuple: (data, keyword arguments of ``viewer.add_<kind>``, kind)."""


def segment_steps(
    seg: Segmenter, image: Any, pixel_size: Any = None
) -> Generator[tuple[int, int], None, Prediction]:
    """Segment ``image`` (a frame or a stack, as for ``Segmenter.analyze``) one batch at a time.

    Yields ``(done, total)`` tiles, first ``(0, total)``; returns the
    :class:`~unet_edge.runtime.Prediction` (probabilities and the scaling of each frame):
    :meth:`Segmenter.analyze_steps`, the steps :meth:`Segmenter.analyze` itself runs.
    ``pixel_size``: the :class:`~unet_edge.scale.Rescale` of :func:`pixel_size_for` (or
    what :meth:`Segmenter.analyze` takes), to segment at the model's pixel size.
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
    pred: Prediction, image: np.ndarray, place: Mapping[str, Any], stated: Any = None
) -> tuple[np.ndarray, ObjectTable]:
    """Instance labels of a prediction (:attr:`Prediction.labels`) and their measurements
    (in µm when a pixel size is ``stated`` (µm) or the input layer's ``scale`` and ``units``
    say micrometres or another length, else in pixels; the mean intensity from ``image``
    when it is a plain (Z,) H, W image)."""
    from ..objects.measure import measure_labels, measure_stack

    labels = pred.labels
    prob = pred.probabilities[..., list(pred.object_classes or (1,)), :, :].sum(axis=-3)
    raw = image if image.shape[: labels.ndim] == labels.shape else None
    cal = scale.output_calibration(stated, layer_calibration(place, labels.ndim))
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


def pixel_size_for(
    model: PixelSize | None, stated: Any, place: Mapping[str, Any], ndim: int
) -> tuple[scale.Rescale | None, str]:
    """How a layer is resampled for a model, and the sentence the widget shows about it.

    ``stated``: the widget's pixel size field (µm, ``"native"``, or None when empty;
    :func:`unet_edge.scale.parse`) overrides the layer's own pixel size, which is its
    ``scale`` when its ``units`` (in ``place``) are a length (:func:`layer_calibration`;
    ``ndim``: the layer's spatial axes, Y and X last). ``model``: the model's training
    pixel size; a model without one segments every layer as it is, whatever is stated.
    Returns the :class:`~unet_edge.scale.Rescale` (None: as it is) for
    :func:`segment_steps`. Raises :class:`~unet_edge.InputError` for a field that is not a
    pixel size, :class:`~unet_edge.errors.ScaleError` for a layer's pixel size more than
    8x from the model's (stating it in the field resamples anyway).
    """
    stated = scale.parse(stated)
    found = layer_calibration(place, ndim)
    if model is None:
        field = "; the pixel size field does nothing for it" if stated is not None else ""
        return None, f"the model records no training pixel size: not resampled{field}"
    theirs = f"the model's {_um_text((model.y, model.x))}"
    if stated == scale.NATIVE:
        return None, f"pixel size: native, as stated: not resampled to {theirs}"
    rescale = scale.resolve(model, stated, found)
    if stated is None and found is None:
        why = _not_a_calibration(place, ndim)
        return None, f"pixel size unknown ({why}): not resampled to {theirs}; state it in µm"
    whose = "stated" if stated is not None else "the layer's"
    if rescale is None:  # a factor of 1: the layer is at the model's own pixel size
        return None, f"pixel size ({whose}) is {theirs}: not resampled"
    fy, fx = rescale.factor
    times = f"x{fy:.3g}" if abs(fy - fx) < 1e-6 else f"x{fy:.3g} (y), x{fx:.3g} (x)"
    return rescale, (
        f"pixel size {_um_text(rescale.input_um)} ({whose}): resampled {times} to {theirs} and back"
    )


def _um_text(yx: tuple[float, float]) -> str:
    """``0.004 µm`` (square pixels) or ``0.004 x 0.005 µm`` (y x x)."""
    y, x = yx
    return f"{y:.4g} µm" if abs(y - x) <= 1e-9 * max(y, x) else f"{y:.4g} x {x:.4g} µm"


def _not_a_calibration(place: Mapping[str, Any], ndim: int) -> str:
    """Why a layer's scale is not taken as its pixel size (its units are not a length)."""
    units = [str(u) for u in tuple(place.get("units") or ())[:ndim][-2:]]
    if not units:
        return "the layer has no units"
    if len(set(units)) > 1:
        return f"the layer's y and x are in {units[0]} and {units[1]}"
    scales = tuple(place.get("scale") or (1.0, 1.0))[:ndim][-2:]
    shown = " x ".join(f"{float(v):g}" for v in scales)
    return f"the layer's scale, {shown}, is in {units[0]}, not a length unet-edge reads"


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


def run_shape(pred: Prediction) -> tuple[int, int]:
    """(H, W) of the grid the model ran on: the layer's, or the model's pixel size's when the
    layer was resampled (sized as :class:`unet_edge.scale.Grid` sizes it)."""
    h, w = pred.mask.shape[-2:]
    if not pred.rescale:
        return (int(h), int(w))
    (iy, ix), (my, mx) = pred.rescale["input_pixel_size_um"], pred.rescale["model_pixel_size_um"]
    return (max(1, round(h * (iy / my))), max(1, round(w * (ix / mx))))  # the factor unrounded


def provenance(seg: Segmenter, pred: Prediction, source: str) -> dict[str, Any]:
    """What made this result (as ``unet-edge run`` writes it into TIFFs), for layer metadata;
    the tile plan is the one the model ran (on the model's grid when resampled)."""
    extra = {"rescale": pred.rescale} if pred.rescale else {}
    plan = seg.plan_for(run_shape(pred))
    return seg.result_provenance(
        plan, pred.stats, source=source, quality=pred.quality_record(), **extra
    )


def domain_warning(seg: Segmenter, pred: Prediction, source: str) -> str | None:
    """The notification for a layer unlike the model's training data (None: it is alike, or
    the model has no training statistics): :meth:`unet_edge.domain.Guard.warning`."""
    return seg.guard.warning(source, pred.quality) if seg.guard else None
