"""napari reader for the results ``unet-edge run`` writes, and the sample image.

It claims ``NAME_mask`` and ``NAME_probabilities`` TIFFs (``.tif``, ``.tiff``,
``.ome.tif``) that hold unet-edge provenance (:func:`unet_edge.io.read_provenance`:
ImageJ ``Info`` property, OME MapAnnotation, or the JSON ImageDescription of
older files); other TIFFs are left to other readers. A mask opens as a Labels
layer of class indices, probabilities as one Image layer per class, named and
shown as the segmentation widget shows its results, with the pixel size the
file carries (:func:`unet_edge.io.read_calibration`) as ``scale`` and ``units``
and the provenance and calibration in the layers' metadata. Needs tifffile
only (no napari import).
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
from ..imagemeta import Calibration
from ._segment import LayerData, mask_layer, probability_layer

_KINDS = ("mask", "probabilities")


def get_reader(path: str | list[str]) -> Callable[[str], list[LayerData]] | None:
    """napari's reader hook: :func:`read` for a result unet-edge wrote, None otherwise."""
    if not isinstance(path, (str, os.PathLike)) or _name_and_kind(path) is None:
        return None
    try:
        prov = io.read_provenance(path)
    except (UnetEdgeError, OSError):  # unreadable: not ours to read
        return None
    return read if _ours(prov) else None


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
    prov, cal = io.read_provenance(path), io.read_calibration(path)
    data = io.read_image(path)
    classes = [str(c) for c in prov.get("classes") or []]
    meta = {
        "provenance": prov,
        "calibration": dataclasses.asdict(cal) if cal else None,
        "path": str(path),
    }
    if kind == "probabilities":
        probs = _with_class_axis(data, len(classes))
        names = classes or [str(k) for k in range(probs.shape[-3])]
        return [probability_layer(probs, name, names, _placed(cal, probs.ndim - 1), meta)]
    if len(classes) == 2:
        data = (data > 0).astype(np.uint8)  # saved as 0/255 (processing.mask_to_image)
    return [mask_layer(data, name, _placed(cal, data.ndim), meta)]


def _with_class_axis(data: np.ndarray, classes: int) -> np.ndarray:
    """(K, H, W) or (Z, K, H, W): hyperstacks (CYX, ZCYX) as they are, the pages of older
    files, (Z * K, H, W), with their class axis restored."""
    if data.ndim < 3:
        return data[None]
    h, w = data.shape[-2:]
    out = data.reshape(-1, classes or data.shape[-3], h, w)
    return out[0] if out.shape[0] == 1 else out


def _placed(cal: Calibration | None, ndim: int) -> dict[str, Any]:
    """Layer keywords ``scale`` (and ``units`` when napari knows the unit) for (Z), Y, X."""
    if cal is None or ndim > 3:
        return {}
    scale = (cal.z or 1.0, cal.y, cal.x)[-ndim:]
    unit = cal.unit_name
    return {"scale": scale, **({"units": (unit,) * ndim} if unit else {})}


def isbi_sample() -> list[LayerData]:
    """The ISBI 2012 EM slice shipped with the package, as an Image layer."""
    path = Path(str(resources.files("unet_edge") / "data" / "sample_isbi2012.png"))
    return [(io.read_image(path), {"name": "ISBI 2012 sample"}, "image")]
