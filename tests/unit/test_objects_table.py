"""unet_edge.objects.table: columns named with their unit, CSV text, concatenation."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from unet_edge.imagemeta import Calibration
from unet_edge.objects.measure import ObjectSums
from unet_edge.objects.table import ObjectTable, write_csv


def _sums() -> ObjectSums:
    lab = np.zeros((5, 6), np.uint32)
    lab[0:2, 0:3] = 1
    lab[3:5, 4:6] = 2
    raw = np.dstack([np.full((5, 6), 10.0), np.full((5, 6), 20.0)])
    return ObjectSums(2).add(lab, prob=np.full((5, 6), 0.5), raw=raw)


def test_columns_in_pixels_and_micrometres() -> None:
    px = _sums().table()
    assert px.names == [
        "label", "slice", "area_px", "centroid_y_px", "centroid_x_px", "bbox_top_px",
        "bbox_left_px", "bbox_height_px", "bbox_width_px", "perimeter_px",
        "equivalent_diameter_px", "mean_probability", "mean_intensity_c0", "mean_intensity_c1",
    ]  # fmt: skip
    um = _sums().table(Calibration(0.2, 0.2, "µm"), z=4)
    assert um.unit == "um" and "area_um2" in um.names and "perimeter_um" in um.names
    assert list(um["slice"]) == [5, 5] and um["area_um2"] == pytest.approx([6 * 0.04, 4 * 0.04])
    # A unit that does not convert to micrometres: pixels, not a wrong number of um.
    odd = _sums().table(Calibration(1.0, 1.0, "furlong"))
    assert odd.unit == "px" and "area_px" in odd.names


def test_csv_round_trips(tmp_path) -> None:  # type: ignore[no-untyped-def]
    t = _sums().table(Calibration(0.2, 0.2, "µm"))
    path = write_csv(tmp_path / "x_objects.csv", t)
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert [int(r["label"]) for r in rows] == [1, 2]
    assert float(rows[0]["area_um2"]) == pytest.approx(6 * 0.04, rel=1e-9)
    assert float(rows[1]["mean_intensity_c1"]) == 20.0
    assert rows[0]["bbox_top_um"] == "0"


def test_concat_and_empty() -> None:
    a = _sums().table(z=0)
    b = _sums().table(z=1)
    both = ObjectTable.concat([a, b])
    assert len(both) == 4 and list(both["slice"]) == [1, 1, 2, 2]
    assert len(ObjectTable.concat([])) == 0
    empty = ObjectSums().table()
    assert len(empty) == 0 and empty.to_csv().count("\n") == 1  # the header alone
    assert [r["label"] for r in a.rows()] == [1, 2]
