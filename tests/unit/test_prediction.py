"""Prediction: mask and labels taken from the probabilities."""

from __future__ import annotations

import numpy as np

from unet_edge.prediction import Prediction


def test_mask_is_the_argmax_and_labels_follow_the_object_classes() -> None:
    probs = np.zeros((3, 4, 6), np.float32)
    probs[0] = 1.0
    probs[:, :, 0:2] = [[[0.0]], [[1.0]], [[0.0]]]  # class 1 in columns 0-1
    probs[:, :, 4:6] = [[[0.0]], [[0.0]], [[1.0]]]  # class 2 in columns 4-5
    p = Prediction(probs, ({"mode": "x"},), object_classes=(2,))
    assert p.mask.dtype == np.uint8
    assert p.mask[0].tolist() == [1, 1, 0, 0, 2, 2]
    labels = p.labels
    assert labels.dtype == np.uint32
    assert labels[0].tolist() == [0, 0, 0, 0, 1, 1]  # class 1 is not an object class here


def test_labels_default_to_class_one_for_a_stack() -> None:
    probs = np.zeros((2, 2, 3, 3), np.float32)
    probs[:, 0] = 1.0
    probs[1, :, 1, 1] = [0.0, 1.0]
    p = Prediction(probs, ({}, {}))
    assert p.mask.shape == (2, 3, 3)
    assert p.labels[0].max() == 0 and p.labels[1][1, 1] == 1


def test_labelled_follows_a_stated_rule() -> None:
    import cv2

    mask = np.zeros((60, 120), np.uint8)
    cv2.circle(mask, (35, 30), 20, 1, -1)
    cv2.circle(mask, (35 + 34, 30), 20, 1, -1)  # overlapping: one region, a neck between
    mask[2, 110] = 1  # a speck
    probs = np.stack([1.0 - mask, mask]).astype(np.float32)
    p = Prediction(probs, ({},))
    assert p.labels.max() == 2  # the two discs as one region, and the speck
    assert np.array_equal(p.labelled({}), p.labels)
    split = p.labelled({"split": "watershed", "min_size": "10px"})
    assert split.max() == 2 and split[30, 35] != split[30, 69] and split[2, 110] == 0


def test_labels_give_a_border_class_back_to_the_objects() -> None:
    mask = np.zeros((20, 30), np.uint8)
    mask[5:15, 5:25] = 1
    mask[5:15, 13:17] = 2  # a border band between two touching cells
    probs = np.stack([mask == k for k in range(3)]).astype(np.float32)
    plain = Prediction(probs, ({},), object_classes=(1,))
    assert plain.labels.max() == 2 and (plain.labels > 0).sum() == 160
    given = Prediction(probs, ({},), object_classes=(1,), border_classes=(2,))
    for labels in (given.labels, given.labelled({}), given.labelled({"min_size": "5px"})):
        assert labels.max() == 2 and (labels > 0).sum() == 200
        assert set(np.unique(labels[5:15, 5:15])) == {1} and set(
            np.unique(labels[5:15, 15:25])
        ) == {2}
