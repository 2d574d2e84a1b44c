"""The touching-nuclei generator: seeded, varied, labels consistent with the image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from unet_edge.errors import InputError
from unet_edge.evaluate import read_array
from unet_edge.training.instances import border_band
from unet_edge.training.synthetic import NucleiStyle, nuclei_image, nuclei_layout, write_folder


def test_same_seed_same_image_other_seed_other_image():
    a_img, a_lab = nuclei_image(5, (96, 128))
    b_img, b_lab = nuclei_image(5, (96, 128))
    np.testing.assert_array_equal(a_img, b_img)
    np.testing.assert_array_equal(a_lab, b_lab)
    c_img, _ = nuclei_image(6, (96, 128))
    assert a_img.shape == (96, 128) and not np.array_equal(a_img, c_img)


def test_labels_are_consecutive_connected_instances():
    import cv2

    _, labels = nuclei_image(1, (160, 160), diameter=20.0)
    ids = np.unique(labels)
    assert labels.dtype == np.uint16
    np.testing.assert_array_equal(ids, np.arange(ids.size))  # 0..N, none missing
    for k in ids[1:]:
        n, _ = cv2.connectedComponents((labels == k).astype(np.uint8), connectivity=4)
        assert n == 2, f"nucleus {k} is in {n - 1} pieces"


def test_nuclei_touch_in_clusters():
    touching = 0
    for seed in range(6):
        labels, _ = nuclei_layout(np.random.default_rng(seed), (128, 128))
        touching += int(border_band(labels.astype(np.int32), 1.0).any())
    assert touching >= 5  # nearly every image has touching nuclei


def test_nuclei_are_brighter_than_the_background():
    for seed in range(8):
        image, labels = nuclei_image(seed, (128, 128))
        assert image.dtype in (np.uint8, np.uint16)
        if labels.max() == 0:
            continue
        inside = image[labels > 0].astype(float).mean()
        assert inside > image[labels == 0].astype(float).mean()


def test_sizes_follow_the_diameter():
    for d in (10.0, 36.0):
        labels, _ = nuclei_layout(np.random.default_rng(0), (256, 256), diameter=d)
        areas = np.bincount(labels.ravel())[1:]
        median = float(np.median(areas[areas > 0]))
        # overlaps and the image edge make nuclei smaller than the drawn circle, not larger
        assert 0.3 * np.pi * (d / 2) ** 2 < median < 1.4 * np.pi * (d / 2) ** 2


def test_style_ranges_vary_the_images():
    dtypes = {nuclei_image(s, (64, 64))[0].dtype for s in range(20)}
    assert dtypes == {np.dtype(np.uint8), np.dtype(np.uint16)}
    only8 = NucleiStyle(uint16=0.0)
    assert {nuclei_image(s, (64, 64), only8)[0].dtype for s in range(5)} == {np.dtype(np.uint8)}


def test_bad_shape_is_refused():
    with pytest.raises(InputError, match="shape"):
        nuclei_image(0, (4, 64))


def test_write_folder_writes_pairs_that_read_back(tmp_path: Path):
    names = write_folder(tmp_path, 3, seed=9, shape=(64, 80))
    assert names == ["nuclei_0000", "nuclei_0001", "nuclei_0002"]
    for n in names:
        image = read_array(tmp_path / "image" / f"{n}.tif")
        labels = read_array(tmp_path / "label" / f"{n}.tif")
        assert image.shape == labels.shape == (64, 80) and labels.dtype == np.uint16
    # image i comes from the seed (seed, i): a longer folder starts with the same images
    write_folder(tmp_path / "more", 4, seed=9, shape=(64, 80))
    np.testing.assert_array_equal(
        read_array(tmp_path / "more" / "image" / "nuclei_0002.tif"),
        read_array(tmp_path / "image" / "nuclei_0002.tif"),
    )
    with pytest.raises(InputError, match="count"):
        write_folder(tmp_path, 0, seed=1)
