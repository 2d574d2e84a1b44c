"""objects/second_pass.py: what pass 1 keeps for the rule's second pass, and that pass: split,
border given back and objects measured whole, equal to the whole image's."""

from __future__ import annotations

import cv2
import numpy as np

from unet_edge.objects.labels import label, label_classes
from unet_edge.objects.measure import ObjectSums
from unet_edge.objects.merge import BlockMerge
from unet_edge.objects.second_pass import SecondPass


def _classes(seed: int, h: int, w: int) -> np.ndarray:
    """Blobs of three classes (0 background, 1 object, 2 border) on a coarse grid."""
    small = np.random.default_rng(seed).choice(3, size=(h // 3 + 1, w // 3 + 1)).astype(np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def _run(classes: np.ndarray, split: bool, border: tuple[int, ...], min_size: int = 0):
    """Pass 1 over windows of 16 x 33/37 px, then pass 2; (labels, sums)."""
    h, w = classes.shape
    prob = np.random.default_rng(1).random((h, w)).astype(np.float32)
    merge = BlockMerge((h, w), min_size, boxes=split)
    after = SecondPass(w, border, measure=True, split=split)
    regions = [
        (t, lf, min(16, h - t), ww) for t in range(0, h, 16) for lf, ww in ((0, 33), (33, w - 33))
    ]
    for region in regions:
        t, lf, hh, ww = region
        part = (slice(t, t + hh), slice(lf, lf + ww))
        merge.add(region, classes[part] == 1)
        after.add(region, classes[part], prob[part])

    def bands():
        for t in range(0, h, 16):
            row = [r for r in regions if r[0] == t]
            band = np.zeros((row[0][2], w), np.uint32)
            for r in row:
                band[:, r[1] : r[1] + r[3]] = merge.relabel(
                    r, classes[r[0] : r[0] + r[2], r[1] : r[1] + r[3]] == 1
                )
            yield t, band

    try:
        after.prepare(merge.finish(), (h, w), bands)
        got = np.concatenate(list(after.bands(bands)))
    finally:
        after.close()
    return got, after.sums, prob


def test_border_given_back_and_measured_whole():
    classes = _classes(5, 50, 70)
    got, sums, prob = _run(classes, split=False, border=(2,))
    whole = label_classes(classes, (1,), border_classes=(2,))
    assert np.array_equal(got, whole)
    want = ObjectSums().add(whole, prob=prob).table()
    assert sums is not None
    assert np.allclose(sums.table()["mean_probability"], want["mean_probability"])


def test_split_then_border_as_label_classes_does():
    rng = np.random.default_rng(2)
    classes = np.zeros((64, 70), np.uint8)
    for _ in range(12):  # peanuts of class 1 ringed by class 2
        y, x = (int(v) for v in rng.integers(0, (64, 70)))
        cv2.circle(classes, (x, y), 9, 2, -1)
        cv2.circle(classes, (x, y), 7, 1, -1)
        cv2.circle(classes, (x + 10, y + 3), 6, 1, -1)
    got, sums, _ = _run(classes, split=True, border=(2,), min_size=4)
    want = label_classes(classes, (1,), min_size=4, split="watershed", border_classes=(2,))
    assert want.max() > label(classes == 1, min_size=4).max()  # something was split
    assert np.array_equal(got, want)
    assert sums is not None and len(sums.table()) == int(want.max())


def test_without_a_border_class_only_the_split_and_measurements():
    classes = _classes(9, 48, 70)
    got, sums, _ = _run(classes, split=True, border=())
    assert np.array_equal(got, label(classes == 1, split="watershed"))
    assert sums is not None and np.array_equal(
        sums.table()["area_px"], np.bincount(got.ravel())[1:]
    )
