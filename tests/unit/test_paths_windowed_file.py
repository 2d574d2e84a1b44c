"""paths/windowed_file.py: a planned file's window-by-window outputs (mask, labels, table)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from unet_edge import io
from unet_edge.errors import ImageReadError
from unet_edge.objects.labels import label, object_mask
from unet_edge.paths.files import plan_files
from unet_edge.paths.windowed_file import segment_plan
from unet_edge.runtime import Segmenter


@pytest.fixture
def image_tif(tmp_path: Path) -> Path:
    rng = np.random.default_rng(2)
    image = np.cumsum(np.cumsum(rng.random((330, 410)), 0), 1)
    path = tmp_path / "img.tif"
    tifffile.imwrite(path, (image / image.max() * 4095).astype(np.uint16))
    return path


def test_outputs_of_the_plan(tiny_onnx: Path, image_tif: Path, tmp_path: Path) -> None:
    seg = Segmenter(tiny_onnx, tile=236)
    plan = plan_files([image_tif], tmp_path / "out", large=True, labels=True, min_size=5)[0]
    assert set(plan.outputs) == {"mask", "labels"}
    folders: list[Path] = []

    def make_folder(p: object) -> None:
        folders.append(plan.outputs["mask"].parent)
        plan.outputs["mask"].parent.mkdir()

    header = io.image_header(image_tif)
    prov = segment_plan(seg, plan, header, None, make_folder=make_folder)
    assert folders == [tmp_path / "out"] and prov["source"] == "img.tif"
    about = io.read_provenance(plan.outputs["labels"])["objects"]
    assert about == {"classes": ["class1"], "min_size": "5px", "split": None}
    mask = seg.segment(tifffile.imread(image_tif))
    want = label(object_mask(mask, seg.info.object_classes), min_size=5)
    assert np.array_equal(tifffile.imread(plan.outputs["labels"]), want)
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["img_labels.tif", "img_mask.tif"]


def test_a_changed_input_is_refused_before_any_output(
    tiny_onnx: Path, image_tif: Path, tmp_path: Path
) -> None:
    seg = Segmenter(tiny_onnx)
    plan = plan_files([image_tif], tmp_path / "out", large=True, labels=True)[0]
    header = io.image_header(image_tif)
    tifffile.imwrite(image_tif, np.zeros((20, 20), np.uint16))  # replaced after the preflight
    called: list[object] = []
    with pytest.raises(ImageReadError):
        segment_plan(seg, plan, header, None, make_folder=called.append)
    assert called == [] and not (tmp_path / "out").exists()
