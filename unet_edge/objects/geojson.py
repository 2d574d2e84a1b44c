"""Objects as a GeoJSON FeatureCollection that QuPath imports (File > Import objects).

One Feature per object: a Polygon in pixel coordinates (the pixel-edge
outline of :mod:`unet_edge.objects.outlines`: x right, y down, the image's
top-left corner at 0, 0; the exterior first, then one ring per hole, each
closed), and as properties QuPath's ``objectType`` (``"detection"``), the
``name`` (the label, ``z<slice>-<label>`` in a stack), a ``classification``
(the object class) and the ``measurements`` of the object table
(:class:`unet_edge.objects.ObjectTable`). Objects of a stack carry their
slice as the geometry's ``plane`` (``z`` from 0), as QuPath writes it.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..io.atomic import write_atomically
from .outlines import Outline, outlines, ring_area
from .rois import roi_name
from .table import ObjectTable

__all__ = ["feature_collection", "write_geojson"]


def _ring(points: np.ndarray, clockwise_on_screen: bool) -> list[list[int]]:
    """A closed GeoJSON ring with the asked turning sense (y down)."""
    if (ring_area(points) > 0) != clockwise_on_screen:
        points = points[::-1]
    return [[int(x), int(y)] for x, y in (*points, points[0])]


def _feature(outline: Outline, z: int | None, props: dict[str, Any]) -> dict[str, Any]:
    # RFC 7946: exterior counter-clockwise, holes clockwise, in the coordinates' own
    # axes (x right, y up): with y down that is clockwise on the screen for the exterior.
    rings = [_ring(outline.exterior, True), *(_ring(h, False) for h in outline.holes)]
    geometry: dict[str, Any] = {"type": "Polygon", "coordinates": rings}
    if z is not None:
        geometry["plane"] = {"c": -1, "z": z, "t": 0}
    return {
        "type": "Feature",
        "id": str(uuid.uuid5(uuid.NAMESPACE_OID, f"unet-edge/{roi_name(outline.label, z)}")),
        "geometry": geometry,
        "properties": props,
    }


def _features(
    labels: np.ndarray, table: ObjectTable | None, class_name: str
) -> Iterator[dict[str, Any]]:
    rows: dict[tuple[int, int], dict[str, Any]] = {}
    if table is not None:
        rows = {(r["slice"], r["label"]): r for r in table.rows()}
    planes = [(None, labels)] if labels.ndim == 2 else list(enumerate(labels))
    for z, plane in planes:
        for outline in outlines(plane):
            row = rows.get((1 if z is None else z + 1, outline.label), {})
            props: dict[str, Any] = {
                "objectType": "detection",
                "name": roi_name(outline.label, z),
                "classification": {"name": class_name},
            }
            if row:
                props["measurements"] = row
            yield _feature(outline, z, props)


def feature_collection(
    labels: np.ndarray, table: ObjectTable | None = None, class_name: str = "cell"
) -> dict[str, Any]:
    """The FeatureCollection of a label image (H, W) or stack (Z, H, W) (ids per slice);
    ``table``: its measurements (rows matched by slice and label)."""
    labels = np.asarray(labels)
    if labels.ndim not in (2, 3) or labels.dtype.kind not in "ui":
        raise InputError(
            f"labels must be integer (H, W) or (Z, H, W), got {labels.dtype} {labels.shape}"
        )
    return {"type": "FeatureCollection", "features": list(_features(labels, table, class_name))}


def write_geojson(
    path: str | os.PathLike[str],
    labels: np.ndarray,
    table: ObjectTable | None = None,
    class_name: str = "cell",
) -> Path:
    """Write :func:`feature_collection` to ``path`` (``NAME_objects.geojson``), atomically."""
    text = json.dumps(
        feature_collection(labels, table, class_name), separators=(",", ":"), allow_nan=False
    )

    def writer(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    return write_atomically(Path(path), writer)
