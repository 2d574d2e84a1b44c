"""napari reader for the results ``unet-edge run`` writes, and the sample image.

It claims ``NAME_mask`` and ``NAME_probabilities`` TIFFs (``.tif``, ``.tiff``,
``.ome.tif``) that hold unet-edge provenance (:func:`unet_edge.io.read_provenance`:
ImageJ ``Info`` property, OME MapAnnotation, or the JSON ImageDescription of
older files); other TIFFs are left to other readers. A mask opens as a Labels
layer of class indices, probabilities as one Image layer per class, named and
shown as the segmentation widget shows its results, with the pixel size the
file carries (:func:`unet_edge.io.read_calibration`) as ``scale`` and ``units``
(a time series' frame interval on its T axis, pixel size or not) and the provenance
and calibration in the layers' metadata. Needs tifffile
only (no napari import). ``NAME_labels.tif`` (``run --labels``) opens as a Labels
layer of instance labels, with the ``NAME_objects.csv`` beside it (``--measure``)
as the layer's features.

Provenance is read from the file, so it is not trusted: a file whose class
names are not a list of at most 256 short strings (``classes: 5``, a million
names, numbers) is declined (:func:`get_reader` returns None), and
:func:`read` never raises over provenance: class names that do not match the
data's class axis are replaced by class numbers.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .. import io
from ..errors import UnetEdgeError
from ..imagemeta import Calibration, Interval
from ..objects.table import ObjectTable, read_csv
from ._segment import LayerData, labels_layer, mask_layer, probability_layer

_KINDS = ("mask", "probabilities", "labels")
#: Most class names a result can have (masks hold uint8 class indices), and their length.
_MAX_CLASSES, _MAX_NAME = 256, 200


def get_reader(path: str | list[str]) -> Callable[[str], list[LayerData]] | None:
    """napari's reader hook: :func:`read` for a result unet-edge wrote, None otherwise."""
    if not isinstance(path, (str, os.PathLike)) or _name_and_kind(path) is None:
        return None
    try:
        prov = io.read_provenance(path)
    except (UnetEdgeError, OSError):  # unreadable: not ours to read
        return None
    return read if _ours(prov) and _class_names(prov) is not None else None


def _class_names(provenance: dict[str, Any]) -> list[str] | None:
    """The class names the provenance gives ([] when none), non-printable characters
    dropped; None when they are forged: not a list of at most 256 non-empty strings of at
    most 200 characters."""
    names = provenance.get("classes")
    if names is None:
        return []
    if not isinstance(names, list) or len(names) > _MAX_CLASSES:
        return None
    if not all(isinstance(n, str) and 0 < len(n) <= _MAX_NAME for n in names):
        return None
    return ["".join(c for c in n if c.isprintable()) for n in names]


def _ours(provenance: dict[str, Any]) -> bool:
    return str(provenance.get("software", "")).startswith("unet-edge")


def _name_and_kind(path: str | os.PathLike[str]) -> tuple[str, str] | None:
    """``("NAME", "mask")`` for ``NAME_mask.tif`` (``.tiff``, ``.ome.tif``), ``("NAME",
    "probabilities")`` for ``NAME_probabilities.tif``...; None for other file names."""
    stem, suffix = os.path.splitext(Path(path).name)
    if suffix.lower() not in io.TIFF_SUFFIXES:
        return None
    stem = stem[:-4] if stem.lower().endswith(".ome") else stem
    for kind in _KINDS:
        if stem.lower().endswith(f"_{kind}"):
            return stem[: -len(kind) - 1], kind
    return None


def read(path: str | os.PathLike[str]) -> list[LayerData]:
    """A mask (Labels, class indices) or probabilities (Image per class) with scale and metadata."""
    name, kind = _name_and_kind(path) or (Path(path).stem, "mask")
    prov = io.read_provenance(path)
    image = io.read_file(path)  # pixels, header (axes) and calibration from one open
    data, cal, axes = image.pixels, image.calibration, image.header.axes
    when = image.interval  # a time series' frame interval, with a pixel size or not
    classes = _class_names(prov) or []
    meta = {
        "provenance": prov,
        "calibration": dataclasses.asdict(cal) if cal else None,
        "path": str(path),
    }
    if kind == "labels":
        placed = _placed(cal, data.ndim, axes, when)
        return [labels_layer(data, name, placed, meta, _table(path, name))]
    if kind == "probabilities":
        probs = _with_class_axis(data, image.header.axes, len(classes))
        k = probs.shape[-3]
        names = classes if len(classes) == k else [str(i) for i in range(k)]
        placed = _placed(cal, probs.ndim - 1, axes.replace("C", ""), when)  # a class's axes
        return [probability_layer(probs, name, names, placed, meta)]
    if len(classes) == 2 and not np.any((data != 0) & (data != 255)):
        data = (data > 0).astype(np.uint8)  # saved as 0/255 (processing.mask_to_image)
    return [mask_layer(data, name, _placed(cal, data.ndim, axes, when), meta)]


def _table(path: str | os.PathLike[str], name: str) -> ObjectTable | None:
    """The measurements ``unet-edge run --measure`` wrote beside a labels file
    (``NAME_objects.csv``), or None when there are none (or they cannot be read)."""
    csv = Path(path).with_name(f"{name}_objects.csv")
    try:
        return read_csv(csv) if csv.is_file() else None
    except (OSError, ValueError):  # damaged or edited by hand: the labels still open
        return None


def _with_class_axis(data: np.ndarray, axes: str, classes: int) -> np.ndarray:
    """(K, H, W) or (Z, K, H, W): hyperstacks (CYX, ZCYX: ``axes`` has C) as they are,
    the pages of older files, (Z * K, H, W), with their class axis restored from the
    number of ``classes`` the provenance names (when it divides the pages)."""
    if data.ndim < 3:
        return data[None]
    if data.ndim != 3 or "C" in axes:
        return data
    k = classes if classes >= 2 and len(data) % classes == 0 else len(data)
    out = data.reshape(-1, k, *data.shape[1:])
    return out[0] if len(out) == 1 else out


#: OME time symbols (:data:`unet_edge.imagemeta.TIME_UNITS`) -> napari's (pint's) unit names.
_TIME_NAMES = {"ns": "nanosecond", "µs": "microsecond", "ms": "millisecond", "s": "second"}
_TIME_NAMES |= {"min": "minute", "h": "hour", "d": "day"}


def _placed(
    cal: Calibration | None, ndim: int, axes: str = "", interval: Interval | None = None
) -> dict[str, Any]:
    """Layer keywords ``scale`` (and ``units`` when napari knows the unit) for (Z), Y, X;
    a layer whose ``axes`` (one letter each, e.g. ``TZYX``) have a T and whose file states
    a time ``interval`` gets it on T (other axes: the pixel size, the slice spacing or 1,
    in the length unit, or ``pixel`` without one)."""
    if interval is not None and "T" in axes and len(axes) == ndim:
        lengths = {"Y": cal.y, "X": cal.x} if cal else {}
        spacing = (cal.z if cal else None) or 1.0  # Z, or pages of an unknown letter
        scale = tuple(interval.t if a == "T" else lengths.get(a, spacing) for a in axes)
        length = (cal.unit_name if cal else None) or "pixel"
        units = tuple(_TIME_NAMES[interval.unit] if a == "T" else length for a in axes)
        return {"scale": scale, "units": units}
    if cal is None or ndim > 3:
        return {}
    scale = (cal.z or 1.0, cal.y, cal.x)[-ndim:]
    unit = cal.unit_name
    return {"scale": scale, **({"units": (unit,) * ndim} if unit else {})}


#: The ISBI 2012 slices' pixel size (about 4 x 4 nm), which the shipped model was trained at.
_ISBI_PIXEL = Calibration(0.004, 0.004, "µm")


def isbi_sample() -> list[LayerData]:
    """The ISBI 2012 EM slice shipped with the package, as an Image layer at its pixel size
    (``scale`` 0.004, ``units`` micrometer): the widget segments it as it is."""
    path = Path(str(resources.files("unet_edge") / "data" / "sample_isbi2012.png"))
    return [(io.read_image(path), {"name": "ISBI 2012 sample", **_placed(_ISBI_PIXEL, 2)}, "image")]
