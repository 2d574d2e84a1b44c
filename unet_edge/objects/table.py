"""The object table: one row per object, columns named with their unit, and its CSV text.

Columns, in order (``U`` is ``um`` when the image's pixel size converts to
micrometres, else ``px``):

=========================  ===============================================================
``label``                  the object's id in the label image
``slice``                  the slice it lies in, counted from 1 as ImageJ does (1 for an image)
``area_U2``/``area_px``    pixel count x pixel area (``area_um2``, or ``area_px``)
``centroid_y_U``, ``_x_``  mean of the pixel centres (pixel (r, c): centre at r + 0.5, c + 0.5)
``bbox_top_U`` ...         bounding box: top, left, height, width (pixel edges)
``perimeter_U``            length of the pixel edges between the object and anything else
``equivalent_diameter_U``  diameter of the disc of the same area, sqrt(4 area / pi)
``mean_probability``       mean probability of the object classes (when probabilities are given)
``mean_intensity``         mean raw value (when the image is given; ``mean_intensity_c0``...)
=========================  ===============================================================
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..io.atomic import write_atomically
from .labels import pixel_area_um2

if TYPE_CHECKING:
    from ..imagemeta import Calibration
    from .measure import ObjectSums

__all__ = ["ObjectTable", "read_csv", "table_from_sums", "write_csv"]


@dataclass(frozen=True)
class ObjectTable:
    """Measurements: ``columns`` maps each column name to a 1-D array (one value per object),
    in the order above; ``unit`` is ``"um"`` or ``"px"``."""

    columns: Mapping[str, np.ndarray]
    unit: str = "px"

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    def rows(self) -> Iterator[dict[str, Any]]:
        """Each object as {column: Python int or float}."""
        for i in range(len(self)):
            yield {k: v[i].item() for k, v in self.columns.items()}

    def to_csv(self) -> str:
        """The table as CSV text (comma-separated, a header line, ``\\n`` line ends)."""
        out = io.StringIO()
        out.write(",".join(self.names) + "\n")
        cols = [
            (v.astype(str) if v.dtype.kind in "iu" else np.char.mod("%.10g", v))
            for v in self.columns.values()
        ]
        for row in zip(*cols, strict=True):
            out.write(",".join(row) + "\n")
        return out.getvalue()

    @staticmethod
    def concat(tables: Sequence[ObjectTable]) -> ObjectTable:
        """Tables with the same columns, one after the other."""
        if not tables:
            return ObjectTable({})
        names = tables[0].names
        return ObjectTable(
            {k: np.concatenate([t[k] for t in tables]) for k in names}, tables[0].unit
        )


def table_from_sums(
    sums: ObjectSums, calibration: Calibration | None, z: int | None
) -> ObjectTable:
    """The measurements of every id of ``sums`` with pixels, ascending (see the module doc)."""
    ids = np.flatnonzero(sums.count)
    ids = ids[ids > 0]
    count = sums.count[ids]
    um = calibration.in_micrometres() if calibration is not None else None
    area_um2 = pixel_area_um2(calibration)
    sy, sx, u = (um.y, um.x, "um") if um is not None and area_um2 else (1.0, 1.0, "px")

    def length(values: np.ndarray, size: float) -> np.ndarray:
        return values * size if u == "um" else values

    area = count * area_um2 if u == "um" and area_um2 else count
    cols: dict[str, np.ndarray] = {
        "label": ids.astype(np.int64),
        "slice": np.full(len(ids), 1 if z is None else z + 1, np.int64),
        f"area_{u}2" if u == "um" else "area_px": area,
        f"centroid_y_{u}": sums.sum_y[ids] / count * sy,
        f"centroid_x_{u}": sums.sum_x[ids] / count * sx,
        f"bbox_top_{u}": length(sums.min_y[ids], sy),
        f"bbox_left_{u}": length(sums.min_x[ids], sx),
        f"bbox_height_{u}": length(sums.max_y[ids] - sums.min_y[ids] + 1, sy),
        f"bbox_width_{u}": length(sums.max_x[ids] - sums.min_x[ids] + 1, sx),
        f"perimeter_{u}": (
            sums.edges_y[ids] * sx + sums.edges_x[ids] * sy
            if u == "um"
            else sums.edges_y[ids] + sums.edges_x[ids]
        ),
        f"equivalent_diameter_{u}": np.sqrt(4 * np.asarray(area, np.float64) / math.pi),
    }
    if sums.with_prob:
        cols["mean_probability"] = sums.sum_prob[ids] / count
    raw = sums.sum_raw[ids] / count[:, None]
    if not sums.with_raw:
        pass
    elif raw.shape[1] == 1:
        cols["mean_intensity"] = raw[:, 0]
    else:
        cols.update({f"mean_intensity_c{c}": raw[:, c] for c in range(raw.shape[1])})
    return ObjectTable(cols, u)


def write_csv(path: str | os.PathLike[str], table: ObjectTable) -> Path:
    """Write ``table`` as CSV to ``path`` (``NAME_objects.csv``), atomically."""
    text = table.to_csv()

    def writer(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8", newline="")

    return write_atomically(Path(path), writer)


def read_csv(path: str | os.PathLike[str]) -> ObjectTable:
    """The table a :func:`write_csv` file holds (``label`` and ``slice`` as integers, the other
    columns as floats; the unit from the column names)."""
    import csv

    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        return ObjectTable({})
    names, values = rows[0], np.array(rows[1:], dtype=object).reshape(-1, len(rows[0]))
    cols = {
        n: values[:, i].astype(np.int64 if n in ("label", "slice") else np.float64)
        for i, n in enumerate(names)
    }
    return ObjectTable(cols, "um" if any(n.endswith("_um") for n in names) else "px")
