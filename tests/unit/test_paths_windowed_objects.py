"""paths/windowed_objects.py: labels made window by window equal labelling the whole mask,
and bands are cut into strips of one height."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from unet_edge.objects.labels import label
from unet_edge.paths.windowed import output_windows
from unet_edge.paths.windowed_objects import ObjectFiles, WindowObjects, strips


@pytest.mark.parametrize("tile", [(32, 48), (100, 7), (150, 200)])
def test_labels_by_window_equal_the_whole_masks(tmp_path: Path, tile: tuple[int, int]) -> None:
    rng = np.random.default_rng(tile[0])
    mask = (rng.random((150, 200)) < 0.55).astype(np.uint8)  # class 1: the objects
    mask[70, :] = 1  # one object through every window
    files = ObjectFiles(tmp_path / "labels.tif", tmp_path / "objects.csv", min_size=3)
    objects = WindowObjects(mask.shape, [1], files)
    for region in output_windows(mask.shape, tile):
        r0, c0, h, w = region
        probs = np.stack([1.0 - mask, mask]).astype(np.float32)[:, r0 : r0 + h, c0 : c0 + w]
        objects.add(region, mask[r0 : r0 + h, c0 : c0 + w], objects.probability(probs))
    written = objects.write({"model": "test"}, None)
    assert written == [files.labels, files.table]
    want = label(mask == 1, min_size=3)
    assert np.array_equal(tifffile.imread(files.labels), want) and want.max() > 10
    rows = (tmp_path / "objects.csv").read_text().splitlines()
    assert len(rows) == int(want.max()) + 1  # a header and one row per object


def test_no_object_outputs_without_labelling(tiny_onnx: Path, tmp_path: Path) -> None:
    from unet_edge import Segmenter
    from unet_edge.paths import files

    tifffile.imwrite(tmp_path / "a.tif", np.zeros((8, 8), np.uint8))
    plan = files.plan_files([tmp_path / "a.tif"], tmp_path / "o")[0]
    assert ObjectFiles.for_plan(Segmenter(tiny_onnx), plan, None) is None


def test_strips_cut_bands_into_one_height() -> None:
    bands = [np.arange(10 * 3).reshape(10, 3), np.zeros((7, 3), int)]
    got = list(strips(bands, 4))
    assert [s.shape[0] for s in got] == [4, 4, 2, 4, 3]
    assert np.array_equal(np.concatenate(got), np.concatenate(bands))
