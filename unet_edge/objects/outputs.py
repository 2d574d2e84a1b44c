"""The four object outputs of one image: labels TIFF, object table, ROI set, GeoJSON.

For an input ``NAME.ext``: ``NAME_labels.tif`` (:func:`unet_edge.io.write_labels`),
``NAME_objects.csv`` (:func:`unet_edge.objects.table.write_csv`),
``NAME_rois.zip`` (:func:`unet_edge.objects.rois.write_rois`) and
``NAME_objects.geojson`` (:func:`unet_edge.objects.geojson.write_geojson`).
:func:`object_writers` labels the mask once, measures once (when the table or
the GeoJSON is asked for) and returns one writer per asked output; the files
driver (:mod:`unet_edge.paths.files`) writes them with the mask, atomically,
all or none.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..imagemeta import Calibration
from .labels import MinSize, Split, label_classes

__all__ = ["OBJECT_OUTPUTS", "Labelling", "object_kinds", "object_writers", "output_names"]

#: Output kind -> the suffix after the input's stem.
OBJECT_OUTPUTS = {
    "labels": "_labels.tif",
    "objects": "_objects.csv",
    "rois": "_rois.zip",
    "geojson": "_objects.geojson",
}


@dataclass(frozen=True)
class Labelling:
    """How objects are made from the mask: the smallest kept (:class:`MinSize`) and how
    touching ones are split. None leaves either to the model (``ModelInfo.labelling``,
    :meth:`for_model`): without a stated rule, no minimum size and no split."""

    min_size: MinSize | None = None
    split: Split | None = None

    @classmethod
    def make(cls, min_size: Any = None, split: Any = None) -> Labelling:
        """From ``min_size`` (pixels, ``"20px"``, ``"2um2"``) and ``split`` (``"watershed"``,
        ``"none"``); None: the model's."""
        from ..config import look_up

        how = None if split is None else look_up(Split, split, "split method")
        return cls(None if min_size is None else MinSize.parse(min_size), how)

    def for_model(self, stated: Mapping[str, str]) -> Labelling:
        """Every choice made: what the caller said, else the model's ``stated`` rule
        (``ModelInfo.labelling``), else 0 px and no split (in memory and window by window
        alike: both apply the split exactly)."""
        size = self.min_size or MinSize.parse(stated.get("min_size", 0))
        how = self.split or Split(stated.get("split", "none"))
        return Labelling(size, how)

    def to_dict(self) -> dict[str, Any]:
        """For provenance (None: left to the model, not yet resolved)."""
        m = self.min_size
        split = None if self.split in (None, Split.NONE) else self.split.value
        return {"min_size": None if m is None else str(m), "split": split}


def object_kinds(
    *, labels: bool = False, measure: bool = False, rois: bool = False, geojson: bool = False
) -> tuple[str, ...]:
    """The object outputs asked for, as keys of :data:`OBJECT_OUTPUTS` (``measure``:
    ``"objects"``, the table)."""
    asked = {"labels": labels, "objects": measure, "rois": rois, "geojson": geojson}
    return tuple(k for k, v in asked.items() if v)


def output_names(stem: str, kinds: Sequence[str]) -> dict[str, str]:
    """The file names of the object outputs ``kinds`` (keys of :data:`OBJECT_OUTPUTS`)."""
    return {k: f"{stem}{OBJECT_OUTPUTS[k]}" for k in kinds}


def object_writers(
    kinds: Sequence[str],
    prediction: Any,
    image: np.ndarray,
    class_names: Sequence[str],
    labelling: Labelling,
    calibration: Calibration | None,
    provenance: Mapping[str, Any],
) -> dict[str, Callable[[Path], object]]:
    """One writer per asked object output (``kinds``) of an image segmented in memory.

    ``prediction``: the :class:`unet_edge.runtime.Prediction` (probabilities
    (K, H, W) or (Z, K, H, W), its mask and object classes); ``image``: the raw
    pixels ((H, W[, C]) or (Z, H, W[, C])) for the mean intensity.
    """
    from .. import io
    from .geojson import write_geojson
    from .measure import measure_labels, measure_stack
    from .rois import write_rois
    from .table import write_csv

    classes = tuple(prediction.object_classes)
    labels = label_classes(
        prediction.mask,
        classes,
        min_size=labelling.min_size or 0,
        split=labelling.split,
        calibration=calibration,
        border_classes=prediction.border_classes,
    )
    objects = [class_names[c] for c in classes]
    border = [class_names[c] for c in prediction.border_classes]  # given back to the objects
    given = {"border": border} if border else {}
    prov = {**provenance, "objects": {"classes": objects, **labelling.to_dict(), **given}}
    writers: dict[str, Callable[[Path], object]] = {
        "labels": lambda p: io.write_labels(p, labels, prov, calibration=calibration),
        "rois": lambda p: write_rois(p, labels),
    }
    if "objects" in kinds or "geojson" in kinds:
        prob = prediction.probabilities[..., list(classes), :, :].sum(axis=-3)
        if labels.ndim == 3:
            table = measure_stack(labels, prob=prob, raw=image, calibration=calibration)
        else:
            table = measure_labels(labels, prob=prob, raw=image, calibration=calibration)
        writers["objects"] = lambda p: write_csv(p, table)
        writers["geojson"] = lambda p: write_geojson(p, labels, table, "+".join(objects))
    return {k: writers[k] for k in kinds}
