"""Paired image/label folders: listing, pairing by name, name specs (no torch, no skimage)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from unet_edge.datasets import check_same_size, find_pairs, parse_names, split_folder
from unet_edge.errors import DataError, InputError, UnetEdgeError


def make_folder(root: Path, n: int = 2, image: str = "image", label: str = "label") -> Path:
    """``n`` empty image files and their labels; pairing looks at names only."""
    (root / image).mkdir(parents=True)
    (root / label).mkdir()
    for i in range(n):
        (root / image / f"{i:02d}.png").touch()
        (root / label / f"{i:02d}.png").touch()
    return root


def test_pairs_match_by_name(tmp_path: Path):
    root = make_folder(tmp_path)
    pairs = find_pairs(*split_folder(root))
    assert [p[0] for p in pairs] == ["00", "01"]
    assert pairs[0] == ("00", root / "image" / "00.png", root / "label" / "00.png")
    assert [p[0] for p in find_pairs(root / "image", root / "label", ["01"])] == ["01"]


def test_names_are_sorted_and_deduplicated_and_suffixes_may_differ(tmp_path: Path):
    root = make_folder(tmp_path, n=3)
    (root / "label" / "02.png").rename(root / "label" / "02.TIF")
    (root / "image" / "notes.txt").touch()  # not an image: ignored
    pairs = find_pairs(root / "image", root / "label", ["02", "00", "02"])
    assert [p[0] for p in pairs] == ["00", "02"]
    assert pairs[1][2].name == "02.TIF"


def test_plural_subfolders(tmp_path: Path):
    root = make_folder(tmp_path, image="images", label="labels")
    assert split_folder(root) == (root / "images", root / "labels")


def test_missing_label_names_the_image(tmp_path: Path):
    root = make_folder(tmp_path, n=3)
    (root / "label" / "02.png").unlink()
    with pytest.raises(DataError, match=r"no label for 1 image.*02\.png"):
        find_pairs(*split_folder(root))


def test_empty_folder(tmp_path: Path):
    (tmp_path / "image").mkdir()
    (tmp_path / "label").mkdir()
    with pytest.raises(DataError, match=r"image folder .*image holds no images"):
        find_pairs(*split_folder(tmp_path))


def test_missing_folders(tmp_path: Path):
    (tmp_path / "image").mkdir()
    with pytest.raises(DataError, match=r"no label/ sub-folder"):
        split_folder(tmp_path)
    with pytest.raises(DataError, match=r"data folder .*nowhere does not exist"):
        split_folder(tmp_path / "nowhere")
    with pytest.raises(DataError, match=r"label folder .*label does not exist"):
        find_pairs(tmp_path / "image", tmp_path / "label")


def test_unknown_split_name(tmp_path: Path):
    root = make_folder(tmp_path)
    with pytest.raises(DataError, match=r"\['07'\] not found"):
        find_pairs(root / "image", root / "label", ["07"])
    with pytest.raises(DataError, match="empty list of names"):
        find_pairs(root / "image", root / "label", [])


def test_two_files_of_one_name_are_refused(tmp_path: Path):
    root = make_folder(tmp_path)
    (root / "image" / "01.tif").touch()
    with pytest.raises(DataError, match=r"both 01\.png and 01\.tif"):
        find_pairs(root / "image", root / "label")


def test_parse_names():
    assert parse_names("20-24") == ("20", "21", "22", "23", "24")
    assert parse_names("a, 07-08") == ("a", "07", "08")
    assert parse_names("20-24,30") == ("20", "21", "22", "23", "24", "30")
    assert parse_names("slice-a,,") == ("slice-a",)
    with pytest.raises(InputError, match="runs backwards"):
        parse_names("24-20")


def test_check_same_size_names_both_files():
    check_same_size(np.zeros((4, 5, 3)), np.zeros((4, 5)), "a.png", "b.png")
    with pytest.raises(DataError, match=r"a\.png is 5x4 but its label b\.png is 6x4") as e:
        check_same_size(np.zeros((4, 5)), np.zeros((4, 6)), "a.png", "b.png")
    assert isinstance(e.value, UnetEdgeError) and isinstance(e.value, ValueError)


def test_datasets_imports_neither_torch_nor_skimage(imports_none_of):
    imports_none_of("import unet_edge.datasets", "torch", "skimage", "onnxruntime")
