"""ImageJ ROI sets: one traced polygon per object, named by its label, in a ``.zip``.

ImageJ's ROI Manager opens the zip (File > Open, or drag it in): one ROI per
object, named by its label (``"17"``; for a stack ``"z3-17"``, the slice
counted from 1, with the ROI's position set to that slice). An object without
holes is a traced polygon (``Roi.TRACED_ROI``, what the wand and Analyze
Particles make) along its pixel edges, so ImageJ's mask of the ROI is
exactly the object's pixels; an object with holes is a composite ROI (a
``ShapeRoi``: the exterior and each hole as closed subpaths, filled even-odd).
The ROIs are built and serialised with the roifile package.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.atomic import write_atomically
from .outlines import Outline, outlines

__all__ = ["roi_name", "rois_of", "to_roi", "write_rois", "zip_bytes"]

# ImageJ ShapeRoi path operations (java.awt.geom.PathIterator).
_MOVETO, _LINETO, _CLOSE = 0.0, 1.0, 4.0


def roi_name(label: int, z: int | None = None) -> str:
    """The ROI's name: the label, preceded by ``z<slice>-`` (from 1) in a stack."""
    return str(label) if z is None else f"z{z + 1}-{label}"


def to_roi(outline: Outline, z: int | None = None) -> object:
    """A ``roifile.ImagejRoi`` for one outline; ``z``: the slice (0-based) in a stack."""
    import roifile

    name = roi_name(outline.label, z)
    left, top, width, height = outline.bounds
    if not outline.holes:
        roi = roifile.ImagejRoi.frompoints(outline.exterior, name=name, position=z)
        roi.roitype = roifile.ROI_TYPE.TRACED
    else:
        roi = roifile.ImagejRoi(name=name, roitype=roifile.ROI_TYPE.RECT)
        path = [_path(r) for r in (outline.exterior, *outline.holes)]
        roi.multi_coordinates = np.concatenate(path).astype(np.float32)
        roi.shape_roi_size = len(roi.multi_coordinates)
        if z is not None:
            roi.position = z + 1
    roi.left, roi.top, roi.right, roi.bottom = left, top, left + width, top + height
    return roi


def _path(ring: np.ndarray) -> np.ndarray:
    """One closed subpath: MOVETO x y, LINETO x y ..., CLOSE."""
    ops = np.full((len(ring), 1), _LINETO)
    ops[0] = _MOVETO
    return np.concatenate([np.hstack([ops, ring.astype(np.float64)]).ravel(), [_CLOSE]])


def rois_of(labels: np.ndarray) -> list[object]:
    """The ROIs of every object of a label image (H, W) or stack (Z, H, W), slice by slice."""
    labels = np.asarray(labels)
    if labels.ndim not in (2, 3):
        raise InputError(f"labels must be (H, W) or (Z, H, W), got shape {labels.shape}")
    if labels.ndim == 2:
        return [to_roi(o) for o in outlines(labels)]
    return [to_roi(o, z) for z, plane in enumerate(labels) for o in outlines(plane)]


def zip_bytes(rois: Iterable[object]) -> bytes:
    """An ImageJ ROI-set zip of ``rois`` (``NAME.roi`` entries, in order)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for roi in rois:
            z.writestr(f"{roi.name}.roi", roi.tobytes())  # type: ignore[attr-defined]
    return buf.getvalue()


def write_rois(path: str | os.PathLike[str], labels: np.ndarray) -> Path:
    """Write the ROI set of ``labels`` ((H, W) or (Z, H, W)) to ``path`` (``NAME_rois.zip``),
    atomically."""
    data = zip_bytes(rois_of(labels))

    def writer(tmp: Path) -> None:
        tmp.write_bytes(data)

    return write_atomically(Path(path), writer)
