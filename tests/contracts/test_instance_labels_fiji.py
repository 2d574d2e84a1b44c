"""The object outputs in a real ImageJ 1.x: the labels TIFF (uint16 and uint32, a stack) and
the ROI set, as Fiji opens them: object count, a ROI's bounds, each ROI's pixels."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import tifffile
from imagej_runner import imagej_command

from unet_edge import Segmenter, io
from unet_edge.imagemeta import Calibration
from unet_edge.objects.outlines import outlines
from unet_edge.paths.files import segment_file


def _imagej() -> list[str]:
    """The command that runs tests/imagej/IjObjectsProbe.java, or a skip saying why not."""
    return imagej_command("IjObjectsProbe.java")


def _probe(paths: list[Path]) -> list[list[str]]:
    proc = subprocess.run(
        [*_imagej(), *map(str, paths)], capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("\t") for line in proc.stdout.splitlines() if "\t" in line]
    assert all(r[0] in ("IMAGE", "ROI") for r in rows), proc.stdout
    return rows


def test_imagej_opens_labels_and_rois_of_a_calibrated_stack(
    isbi_image: np.ndarray, tmp_path: Path
) -> None:
    command = _imagej()  # skip before computing anything
    assert command
    stack = np.stack([isbi_image[:150, :180], isbi_image[150:300, 200:380]])
    path = tmp_path / "em.tif"
    meta = {"axes": "ZYX", "unit": "um", "spacing": 0.05}
    tifffile.imwrite(path, stack, imagej=True, resolution=(250.0, 250.0), metadata=meta)
    with Segmenter() as seg:
        r = segment_file(seg, path, tmp_path / "out", labels=True, rois=True, min_size=10)
    labels = tifffile.imread(r.outputs["labels"])
    assert labels.shape == stack.shape and labels.dtype == np.uint16
    rows = _probe([r.outputs["labels"], r.outputs["rois"]])
    image, rois = rows[0], rows[1:]
    # width height channels slices frames, bits, the largest label, unit
    assert image[2:8] == ["180", "150", "1", "2", "1", "16"]
    assert int(image[8]) == int(labels.max()) and image[9] in ("micron", "µm")
    assert len(rois) == int(labels[0].max()) + int(labels[1].max())  # one ROI per object
    expected = {  # name -> (x, y, width, height, slice from 1, pixels)
        f"z{z + 1}-{o.label}": (*o.bounds, z + 1, int((plane == o.label).sum()))
        for z, plane in enumerate(labels)
        for o in outlines(plane)
    }
    seen = {row[2]: tuple(map(int, row[4:10])) for row in rois}
    assert seen == expected  # bounds, slice and ImageJ's own mask of every ROI
    assert any(row[3] == "Composite" for row in rois) or all(
        not o.holes for plane in labels for o in outlines(plane)
    )
    assert io.read_calibration(r.outputs["labels"]) == Calibration(0.004, 0.004, "µm", 0.05)


def test_imagej_opens_a_uint32_labels_file(tmp_path: Path) -> None:
    _imagej()
    labels = np.zeros((2, 300, 500), np.uint32)
    labels[:, ::2, ::2] = np.arange(1, 2 * 150 * 250 + 1).reshape(2, 150, 250)  # 75000 ids
    path = io.write_labels(tmp_path / "many_labels.tif", labels, {"k": 1})
    assert tifffile.imread(path).dtype == np.uint32
    [image] = _probe([path])
    # ImageJ opens unsigned 32-bit as a 32-bit (float) image: ids exact below 2^24
    assert image[2:9] == ["500", "300", "1", "2", "1", "32", "75000"]


def test_imagej_fills_a_composite_roi_without_its_hole(tmp_path: Path) -> None:
    _imagej()
    from unet_edge.objects.rois import write_rois

    labels = np.zeros((20, 30), np.uint32)
    labels[2:10, 3:12] = 1
    labels[5:7, 6:8] = 0  # a 2 x 2 hole
    labels[14:19, 20:29] = 2
    rows = _probe([write_rois(tmp_path / "x_rois.zip", labels)])
    assert [r[2:] for r in rows] == [
        ["1", "Composite", "3", "2", "9", "8", "0", "68"],
        ["2", "Traced", "20", "14", "9", "5", "0", "45"],
    ]
