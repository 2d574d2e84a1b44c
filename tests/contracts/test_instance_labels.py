"""Objects across modules: the shipped model's labels on real EM slices, the four files that
segment_file and `unet-edge run` write, min size in px and um2, the uint32 switch, and which
classes a model's metadata calls objects."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import roifile
import tifffile
from click.testing import CliRunner

from unet_edge import Segmenter, io, metadata
from unet_edge.cli import main
from unet_edge.errors import ModelError
from unet_edge.imagemeta import Calibration
from unet_edge.paths.files import segment_file
from unet_edge.runtime import default_model_path


@pytest.fixture(scope="module")
def shipped() -> Segmenter:
    return Segmenter()


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two label images are equal up to renumbering (0 stays background)."""
    if not np.array_equal(a > 0, b > 0):
        return False
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]).astype(np.int64), axis=1)
    return len(pairs[0]) == len(np.unique(a)) == len(np.unique(b))


@pytest.mark.parametrize("name", ["20.png", "24.png"])
def test_shipped_model_labels_are_the_components_of_its_cell_class(
    shipped: Segmenter, isbi: Path, name: str
) -> None:
    image = io.read_image(isbi / "train" / "image" / name)
    labels = shipped.label(image)
    cell = shipped.info.class_names.index("cell")
    mask = shipped.segment(image) == cell
    n, reference = cv2.connectedComponents(mask.view(np.uint8), connectivity=4)
    assert labels.dtype == np.uint32 and labels.shape == image.shape
    assert int(labels.max()) == n - 1 > 50  # EM slices hold many cells
    assert _same_partition(labels, reference)
    assert np.array_equal(shipped.analyze(image).labels, labels)
    big = shipped.label(image, min_size=200)
    assert 0 < big.max() < labels.max() and np.isin(big > 0, labels > 0).all()


def test_stack_labels_slice_by_slice(shipped: Segmenter, isbi_image: np.ndarray) -> None:
    stack = np.stack([isbi_image[:128, :160], isbi_image[128:256, :160]])
    labels = shipped.label(stack)
    assert labels.shape == (2, 128, 160)
    for plane, image in zip(labels, stack, strict=True):
        assert np.array_equal(plane, shipped.label(image))


def _calibrated(folder: Path, image: np.ndarray, um: float = 0.5) -> Path:
    """An EM crop saved with a pixel size far from the model's: the tests below run it at
    its native grid (pixel_size="native"), which keeps the calibration for the objects."""
    path = folder / "em.tif"
    res = 1 / um
    tifffile.imwrite(path, image, imagej=True, resolution=(res, res), metadata={"unit": "um"})
    return path


def test_segment_file_writes_the_four_object_outputs(
    shipped: Segmenter, isbi_image: np.ndarray, tmp_path: Path
) -> None:
    image = isbi_image[:200, :240]
    path = _calibrated(tmp_path, image, um=0.5)
    kinds = {"labels": True, "measure": True, "rois": True, "geojson": True}
    r = segment_file(shipped, path, tmp_path / "out", pixel_size="native", **kinds)
    assert set(r.outputs) == {"mask", "labels", "objects", "rois", "geojson"}
    labels = tifffile.imread(r.outputs["labels"])
    assert labels.dtype == np.uint16 and np.array_equal(labels, shipped.label(image))
    assert io.read_calibration(r.outputs["labels"]) == Calibration(0.5, 0.5, "µm")
    assert io.read_provenance(r.outputs["labels"])["model_sha256"] == r.provenance["model_sha256"]
    with r.outputs["objects"].open() as f:
        rows = list(csv.DictReader(f))
    ids, counts = np.unique(labels[labels > 0], return_counts=True)
    assert [int(row["label"]) for row in rows] == ids.tolist()
    areas = [float(row["area_um2"]) for row in rows]
    assert areas == pytest.approx((counts * 0.25).tolist(), rel=1e-9)  # pixel count x 0.25 um2
    rois = roifile.roiread(r.outputs["rois"])
    assert isinstance(rois, list) and [x.name for x in rois] == [str(i) for i in ids]
    fc = json.loads(r.outputs["geojson"].read_text())
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == len(ids)


def test_min_size_in_pixels_and_square_micrometres(
    shipped: Segmenter, isbi_image: np.ndarray, tmp_path: Path
) -> None:
    image = isbi_image[:160, :160]
    path = _calibrated(tmp_path, image, um=0.5)  # 0.25 um2 per pixel: 20px = 5um2
    base = shipped.label(image)
    counts = np.bincount(base.ravel())[1:]
    for size in ("20px", "5um2"):
        r = segment_file(
            shipped, path, tmp_path / size, labels=True, min_size=size, pixel_size="native"
        )
        kept = tifffile.imread(r.outputs["labels"])
        assert int(kept.max()) == int((counts >= 20).sum()) < len(counts)
    png = tmp_path / "em.png"
    io.write_png(png, image)
    with pytest.raises(Exception, match="pixel size"):
        segment_file(shipped, png, tmp_path / "png", labels=True, min_size="5um2")


def test_cli_run_writes_labels_table_rois_and_geojson(
    isbi_image: np.ndarray, tmp_path: Path
) -> None:
    path = _calibrated(tmp_path, isbi_image[:128, :128])
    out = tmp_path / "o"
    args = [
        "run",
        str(path),
        "-o",
        str(out),
        "-q",
        "--pixel-size",
        "native",
        "--labels",
        "--measure",
    ]
    args.append("--rois")
    r = CliRunner().invoke(main, [*args, "--geojson", "--min-size", "20px", "--split", "watershed"])
    assert r.exit_code == 0, r.output
    names = {"em_mask.tif", "em_labels.tif", "em_objects.csv", "em_rois.zip", "em_objects.geojson"}
    assert {p.name for p in out.iterdir()} == names
    prov = io.read_provenance(out / "em_labels.tif")
    assert prov["objects"] == {"classes": ["cell"], "min_size": "20px", "split": "watershed"}
    bad = CliRunner().invoke(main, [*args, "--min-size", "2cm", "--overwrite"])
    assert bad.exit_code == 2 and "20px or 2um2" in bad.output
    large = CliRunner().invoke(main, [*args, "--large", "--overwrite"])
    assert large.exit_code == 1 and "without --large" in large.output


def test_labels_switch_to_uint32_above_65535_objects(tmp_path: Path) -> None:
    mask = np.zeros((2, 260, 520), bool)
    mask[1, ::2, ::2] = True  # 130 x 260 = 33800 isolated pixels
    mask[0, ::2, ::2] = True
    labels = np.stack([np.zeros((260, 520), np.uint32), np.zeros((260, 520), np.uint32)])
    labels[mask] = np.arange(1, int(mask.sum()) + 1)  # 67600 ids
    cal = Calibration(0.1, 0.1, "µm", 0.5)
    path = io.write_labels(tmp_path / "x_labels.tif", labels, {"k": 1}, calibration=cal)
    with tifffile.TiffFile(path) as tf:
        assert tf.is_imagej and tf.series[0].axes == "ZYX"
        assert np.array_equal(tf.asarray(), labels) and tf.asarray().dtype == np.uint32
    assert io.read_calibration(path) == cal and io.read_provenance(path) == {"k": 1}
    few = io.write_labels(tmp_path / "y_labels.tif", np.minimum(labels, 65535))
    assert tifffile.imread(few).dtype == np.uint16


def test_metadata_says_which_classes_are_objects() -> None:
    info = metadata.read(default_model_path())
    assert info.class_names == ("membrane", "cell") and info.object_classes == (1,)
    explicit = replace(info, objects=("membrane",))
    again = metadata.from_dict(json.loads(explicit.to_json()))
    assert again.objects == ("membrane",) and again.object_classes == (0,)
    assert "objects" not in info.to_dict()["output"]  # optional: older files stay as they were
    arch = replace(info.architecture, classes=3)
    three = replace(info, architecture=arch, class_names=("background", "border", "cell"))
    assert three.object_classes == (2,)  # the cells that the border class separates
    other = replace(three, class_names=("bg", "a", "b"))
    assert other.object_classes == (1, 2)
    with pytest.raises(ModelError, match="object class 'nucleus'"):
        replace(info, objects=("nucleus",))
