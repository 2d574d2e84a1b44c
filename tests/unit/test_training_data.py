"""Training data from image/label folders: reading, label encodings and the errors (no torch).

Finding the pairs (names, sub-folders, missing labels) is tested in test_datasets.py (tests/unit).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from unet_edge.errors import DataError, UnetEdgeError
from unet_edge.evaluate import read_label
from unet_edge.training.data import SegmentationData

ISBI = Path(__file__).resolve().parents[3] / "shared" / "data" / "isbi2012"
needs_isbi = pytest.mark.skipif(
    not (ISBI / "train" / "image").is_dir(),
    reason=f"ISBI 2012 data not found at {ISBI} (expected ../shared next to the repository)",
)


def make_folder(root: Path, n: int = 2, shape: tuple[int, int] = (32, 40)) -> Path:
    (root / "image").mkdir(parents=True)
    (root / "label").mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        cv2.imwrite(str(root / "image" / f"{i:02d}.png"), rng.integers(0, 256, shape, np.uint8))
        lab = np.where(rng.random(shape) > 0.3, 255, 0).astype(np.uint8)
        cv2.imwrite(str(root / "label" / f"{i:02d}.png"), lab)
    return root


def test_binary_labels_become_classes(tmp_path: Path):
    root = make_folder(tmp_path)
    lab = read_label(root / "label" / "00.png")
    assert lab.dtype == np.uint8 and set(np.unique(lab)) == {0, 1}


def test_sixteen_bit_tiff_and_integer_class_maps(tmp_path: Path):
    (tmp_path / "image").mkdir()
    (tmp_path / "label").mkdir()
    image = np.arange(20 * 30, dtype=np.uint16).reshape(20, 30) * 100
    tifffile.imwrite(tmp_path / "image" / "a.tif", image)
    classes = (np.arange(20 * 30).reshape(20, 30) % 3).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "label" / "a.png"), classes)
    data = SegmentationData.from_folder(tmp_path, classes=3)
    # scaled as the runtime scales: the image's 1st and 99.8th percentiles map to 0 and 1
    lo, hi = np.percentile(image, (1.0, 99.8))
    np.testing.assert_allclose(data.images[0][:, :, 0], (image - lo) / (hi - lo), rtol=1e-5)
    # the same 12-bit content in a 16-bit container trains identically
    tifffile.imwrite(tmp_path / "image" / "a.tif", (image // 16).astype(np.uint16))
    again = SegmentationData.from_folder(tmp_path, classes=3)
    np.testing.assert_allclose(again.images[0], data.images[0], atol=2e-3)
    np.testing.assert_array_equal(data.labels[0], classes)
    assert data.weights[0].shape == (20, 30)


def test_size_mismatch_names_both_files(tmp_path: Path):
    root = make_folder(tmp_path)
    cv2.imwrite(str(root / "label" / "01.png"), np.zeros((31, 40), np.uint8))
    with pytest.raises(DataError, match=r"01\.png.*32 .*01\.png.*31") as e:
        SegmentationData.from_folder(root)
    assert isinstance(e.value, UnetEdgeError) and isinstance(e.value, ValueError)


def test_unexpected_label_values_name_the_file(tmp_path: Path):
    root = make_folder(tmp_path)
    bad = np.zeros((32, 40), np.uint8)
    bad[0, :3] = (0, 128, 255)
    cv2.imwrite(str(root / "label" / "00.png"), bad)
    with pytest.raises(DataError, match=r"label .*00\.png has values \{0, 128, 255\}"):
        SegmentationData.from_folder(root)
    # class indices beyond the number of classes
    cv2.imwrite(str(root / "label" / "00.png"), np.full((32, 40), 3, np.uint8))
    with pytest.raises(DataError, match=r"00\.png has values \{3\}.*0\.\.2 for 3 classes"):
        SegmentationData.from_folder(root, classes=3)


@needs_isbi
def test_isbi_labels_are_binary_cells_and_membranes():
    data = SegmentationData.from_folder(ISBI / "train", names=["00", "20"])
    assert data.names == ["00", "20"]
    lab = data.labels[0]
    assert lab.shape == (512, 512) and set(np.unique(lab)) == {0, 1}
    assert 0.1 < (lab == 0).mean() < 0.4  # membranes are the minority class
    norm = data.normalization()
    assert 0.2 < norm.mean < 0.8 and 0.05 < norm.std < 0.5
