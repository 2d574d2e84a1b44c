"""Instance labels as training data: the two- and three-class targets, the instance weight
map against hand-computed values, reading ids, detecting the label kind, classes.txt."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import tifffile

from unet_edge.errors import DataError, InputError
from unet_edge.training.instances import (
    border_band,
    detect_label_kind,
    instance_target,
    instance_weight_map,
    read_class_names,
    read_instances,
    target_class_names,
)


def touching_pair() -> np.ndarray:
    """4 x 8: instance 1 in columns 0-3, instance 7 in columns 4-7 (they touch)."""
    inst = np.zeros((4, 8), np.int32)
    inst[:, :4], inst[:, 4:] = 1, 7
    return inst


def test_two_class_target_makes_the_touching_line_background():
    t = instance_target(touching_pair(), "two-class")
    assert t.dtype == np.uint8
    assert (t[:, 3] == 0).all() and (t[:, 4] == 0).all()  # one pixel on each side
    assert (t[:, :3] == 1).all() and (t[:, 5:] == 1).all()


@pytest.mark.parametrize(("border", "cols"), [(1.0, [3, 4]), (2.0, [2, 3, 4, 5])])
def test_three_class_border_is_the_band_within_border_px_of_another_instance(border, cols):
    t = instance_target(touching_pair(), "three-class", border)
    expected = np.ones((4, 8), np.uint8)
    expected[:, cols] = 2
    np.testing.assert_array_equal(t, expected)


def test_lone_objects_have_no_border_and_keep_their_outline():
    inst = np.zeros((9, 9), np.int32)
    inst[2:7, 2:7] = 3
    t = instance_target(inst, "three-class", 2.0)
    np.testing.assert_array_equal(t, (inst > 0).astype(np.uint8))
    assert not border_band(inst, 2.0).any()


def test_objects_a_gap_apart_get_no_border_class():
    inst = np.zeros((4, 9), np.int32)
    inst[:, :4], inst[:, 5:] = 1, 2  # one background column between them
    t = instance_target(inst, "three-class", 1.0)
    assert not (t == 2).any()
    assert (instance_target(inst, "three-class", 2.0)[:, [3, 5]] == 2).all()


def test_weight_map_matches_the_hand_computed_formula():
    # instance 1 in column 0, instance 2 in column 8 of a 3 x 9 image: every background
    # pixel on a row between them is d1 + d2 = 8 px from the two instances
    inst = np.zeros((3, 9), np.int32)
    inst[:, 0], inst[:, 8] = 1, 2
    target = instance_target(inst, "two-class")
    w = instance_weight_map(inst, target, 2, w0=10.0, sigma=5.0)
    w_bg, w_obj = 27 / (2 * 21), 27 / (2 * 6)  # class balance N / (K n_c)
    np.testing.assert_allclose(w[:, 1:8], w_bg + 10 * math.exp(-(8**2) / (2 * 5**2)), rtol=1e-5)
    np.testing.assert_allclose(w[:, [0, 8]], w_obj, rtol=1e-6)


def test_weight_map_counts_touching_instances_as_two():
    inst = touching_pair()
    target = instance_target(inst, "two-class")
    w = instance_weight_map(inst, target, 2, w0=10.0, sigma=5.0)
    # a touching-line pixel is in one instance (d1 = 0) and 1 px from the other (d2 = 1)
    w_bg = 32 / (2 * 8)
    np.testing.assert_allclose(w[0, 3], w_bg + 10 * math.exp(-1 / 50), rtol=1e-5)
    assert w[0, 3] > 5 * w[0, 0]
    np.testing.assert_allclose(instance_weight_map(inst, target, 2, w0=0.0)[0, 3], w_bg)


def test_three_class_border_weighs_as_its_object_and_gaps_get_the_border_term():
    inst = np.zeros((4, 12), np.int32)
    inst[:, :4], inst[:, 4:8] = 1, 2  # touching; column 8-11 background
    t = instance_target(inst, "three-class", 1.0)
    w = instance_weight_map(inst, t, 3, w0=0.0)
    # background 16 px against 32 object + border px: N / (2 n)
    np.testing.assert_allclose(w[t == 1], 48 / (2 * 32))
    np.testing.assert_allclose(w[t == 2], 48 / (2 * 32))
    np.testing.assert_allclose(w[t == 0], 48 / (2 * 16))
    full = instance_weight_map(inst, t, 3, w0=10.0, sigma=5.0)
    np.testing.assert_allclose(full[t > 0], w[t > 0])  # no border term on objects or borders
    # a background pixel 1 px from instance 2 and 5 px from instance 1
    np.testing.assert_allclose(full[0, 8], w[0, 8] + 10 * math.exp(-(6**2) / 50), rtol=1e-5)


def test_weight_map_refuses_a_target_that_does_not_fit():
    inst = touching_pair()
    with pytest.raises(InputError, match="does not fit"):
        instance_weight_map(inst, instance_target(inst, "three-class"), 2)


def test_bad_targets_and_labels_are_refused():
    with pytest.raises(InputError, match="unknown target"):
        instance_target(touching_pair(), "four-class")
    with pytest.raises(InputError, match="integer"):
        instance_target(np.zeros((4, 4), np.float32))
    with pytest.raises(InputError, match=">= 0"):
        instance_target(-np.ones((4, 4), np.int32))


def test_read_instances_renumbers_ids_and_refuses_floats(tmp_path: Path):
    inst = np.zeros((6, 6), np.uint32)
    inst[:2, :2], inst[3:, 3:] = 70000, 5
    tifffile.imwrite(tmp_path / "a.tif", inst)
    got = read_instances(tmp_path / "a.tif")
    assert got.dtype == np.int32 and set(np.unique(got)) == {0, 1, 2}
    assert got[0, 0] == 2 and got[5, 5] == 1  # order kept
    tifffile.imwrite(tmp_path / "f.tif", inst.astype(np.float32))
    with pytest.raises(DataError, match="float32"):
        read_instances(tmp_path / "f.tif")


def test_detect_label_kind_says_what_it_found(tmp_path: Path):
    ids = np.zeros((8, 8), np.uint16)
    ids[:4, :4], ids[4:, 4:], ids[:4, 4:] = 1, 2, 3
    tifffile.imwrite(tmp_path / "ids.tif", ids)
    kind, why = detect_label_kind([tmp_path / "ids.tif"], 2)
    assert kind == "instances" and "ids.tif" in why and "up to 3" in why
    # the same values are class indices when three classes are named
    assert detect_label_kind([tmp_path / "ids.tif"], 4)[0] == "classes"
    mask = np.where(ids > 0, 255, 0).astype(np.uint8)
    tifffile.imwrite(tmp_path / "mask.tif", mask)
    assert detect_label_kind([tmp_path / "mask.tif"], 2)[0] == "classes"


def test_class_names_from_classes_txt(tmp_path: Path):
    assert read_class_names(tmp_path) is None
    (tmp_path / "classes.txt").write_text("# label values\nbackground\n\nnucleus\nborder\n")
    assert read_class_names(tmp_path) == ("background", "nucleus", "border")
    (tmp_path / "classes.txt").write_text("cell\ncell\n")
    with pytest.raises(DataError, match="distinct"):
        read_class_names(tmp_path)


def test_target_class_names():
    assert target_class_names("two-class") == ("background", "cell")
    assert target_class_names("three-class") == ("background", "cell", "border")
