"""The in-memory path: every output of one image written, all or none."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from unet_edge import io
from unet_edge.errors import OutputError
from unet_edge.paths import files, in_memory
from unet_edge.runtime import Segmenter


@pytest.fixture(scope="module")
def seg(tiny_onnx: Path) -> Segmenter:
    return Segmenter(tiny_onnx)


def test_segment_in_memory_writes_what_the_plan_asks(seg: Segmenter, tmp_path: Path) -> None:
    image = (np.arange(70 * 90, dtype=np.uint16).reshape(70, 90) * 7) % 4096
    src = tmp_path / "a.tif"
    tifffile.imwrite(src, image)
    plan = files.plan_files([src], tmp_path / "out", probabilities=True)[0]
    header = io.image_header(src)
    prov = in_memory.segment_in_memory(seg, plan, header, None)
    mask = tifffile.imread(plan.outputs["mask"])
    probs = tifffile.imread(plan.outputs["probabilities"])
    assert mask.shape == (70, 90) and probs.shape == (seg.info.classes, 70, 90)
    expected = seg.segment(image)
    assert np.array_equal(mask > 0, expected > 0)
    assert (
        prov["source"] == "a.tif" and io.read_provenance(plan.outputs["mask"])["source"] == "a.tif"
    )


def test_write_all_removes_what_it_wrote_when_one_fails(tmp_path: Path) -> None:
    first, second = tmp_path / "1.txt", tmp_path / "2.txt"

    def fails(path: Path) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        in_memory.write_all([(first, lambda p: p.write_text("x")), (second, fails)])
    assert not first.exists() and not second.exists()


def test_make_folder_names_a_folder_it_cannot_create(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    src = tmp_path / "a.png"
    io.write_png(src, np.zeros((8, 8), np.uint8))
    plan = files.plan_files([src], tmp_path / "out")[0]
    bad = files.FilePlan(src, {"mask": blocker / "sub" / "a_mask.png"})
    in_memory.make_folder(plan)
    assert (tmp_path / "out").is_dir()
    with pytest.raises(OutputError, match="cannot create output folder"):
        in_memory.make_folder(bad)
