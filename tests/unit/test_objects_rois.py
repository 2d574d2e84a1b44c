"""unet_edge.objects.rois: an ImageJ ROI set that roifile reads back, one ROI per object."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import roifile

from unet_edge.objects.labels import label
from unet_edge.objects.rois import roi_name, write_rois


def _labels() -> np.ndarray:
    mask = np.zeros((20, 30), bool)
    mask[2:9, 3:12] = True
    mask[4:6, 6:8] = False  # a hole
    mask[12:18, 15:28] = True
    mask[0, 29] = True
    return label(mask)


def test_one_roi_per_object_named_by_its_label(tmp_path: Path) -> None:
    lab = _labels()
    path = write_rois(tmp_path / "x_rois.zip", lab)
    rois = roifile.roiread(path)
    assert isinstance(rois, list) and [r.name for r in rois] == ["1", "2", "3"]
    holed, plain = rois[1], rois[2]  # raster order: (0, 29) is object 1
    assert holed.composite and holed.roitype == roifile.ROI_TYPE.RECT
    exterior, hole = holed.coordinates(multi=True)
    assert sorted(map(tuple, exterior[:-1].tolist())) == [(3, 2), (3, 9), (12, 2), (12, 9)]
    assert sorted(map(tuple, hole[:-1].tolist())) == [(6, 4), (6, 6), (8, 4), (8, 6)]
    assert not plain.composite and plain.roitype == roifile.ROI_TYPE.TRACED
    assert (plain.left, plain.top, plain.right, plain.bottom) == (15, 12, 28, 18)
    assert (holed.left, holed.top, holed.right, holed.bottom) == (3, 2, 12, 9)
    assert sorted(map(tuple, plain.coordinates().tolist())) == [
        (15, 12), (15, 18), (28, 12), (28, 18)
    ]  # fmt: skip


def test_stack_rois_carry_their_slice(tmp_path: Path) -> None:
    lab = _labels()
    stack = np.stack([lab, np.zeros_like(lab), lab[::-1]])
    rois = roifile.roiread(write_rois(tmp_path / "s_rois.zip", stack))
    assert isinstance(rois, list) and len(rois) == 6
    assert [r.position for r in rois] == [1, 1, 1, 3, 3, 3]
    assert rois[0].name == "z1-1" and rois[-1].name == "z3-3" == roi_name(3, 2)


def test_no_objects_is_an_empty_set(tmp_path: Path) -> None:
    path = write_rois(tmp_path / "e_rois.zip", np.zeros((4, 4), np.uint32))
    assert path.is_file() and roifile.roiread(path) == []
