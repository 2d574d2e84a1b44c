"""unet_edge.objects.outputs: the object outputs asked for, from one prediction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import roifile
import tifffile

from unet_edge import io
from unet_edge.errors import ConfigError
from unet_edge.imagemeta import Calibration
from unet_edge.objects.labels import MinSize, Split
from unet_edge.objects.outputs import Labelling, object_kinds, object_writers, output_names
from unet_edge.runtime import Prediction


def _prediction() -> Prediction:
    probs = np.zeros((2, 12, 14), np.float32)
    probs[0] = 1.0
    probs[:, 2:6, 2:6] = [[[0.2]], [[0.8]]]  # 16 px of class 1
    probs[:, 8:10, 9:13] = [[[0.4]], [[0.6]]]  # 8 px of class 1
    probs[:, 0, 0] = [0.1, 0.9]  # 1 px of class 1
    return Prediction(probs, ({},), (1,))


def test_kinds_names_and_labelling() -> None:
    assert object_kinds(labels=True, geojson=True) == ("labels", "geojson")
    assert object_kinds(measure=True) == ("objects",)
    assert output_names("em", ("labels", "rois")) == {
        "labels": "em_labels.tif",
        "rois": "em_rois.zip",
    }
    lab = Labelling.make("2um2", "watershed")
    assert lab == Labelling(MinSize(2, "um2"), Split.WATERSHED)
    assert lab.to_dict() == {"min_size": "2um2", "split": "watershed"}
    with pytest.raises(ConfigError, match="split method"):
        Labelling.make(0, "voronoi")


def test_labelling_left_to_the_model_takes_its_rule_unless_the_caller_says() -> None:
    rule = {"split": "watershed", "min_size": "10px"}
    assert Labelling.make().for_model(rule) == Labelling(MinSize(10), Split.WATERSHED)
    assert Labelling.make().for_model({}) == Labelling(MinSize(0), Split.NONE)
    said = Labelling.make("3px", "none").for_model(rule)
    assert said == Labelling(MinSize(3), Split.NONE)
    assert said.to_dict() == {"min_size": "3px", "split": None}
    # an explicit 0 px is the caller's choice; None (segment_file's default) is the model's
    assert Labelling.make(0).for_model(rule) == Labelling(MinSize(0), Split.WATERSHED)
    assert Labelling.make().to_dict() == {"min_size": None, "split": None}


def test_every_output_from_one_prediction(tmp_path: Path) -> None:
    pred = _prediction()
    image = np.arange(12 * 14, dtype=np.uint16).reshape(12, 14)
    cal = Calibration(0.5, 0.5, "µm")
    kinds = ("labels", "objects", "rois", "geojson")
    labelling = Labelling.make("1um2")  # 4 px: the 1-px object goes
    writers = object_writers(kinds, pred, image, ("membrane", "cell"), labelling, cal, {"a": 1})
    assert list(writers) == list(kinds)
    paths = {k: tmp_path / n for k, n in output_names("x", kinds).items()}
    for k, w in writers.items():
        w(paths[k])
    with tifffile.TiffFile(paths["labels"]) as tf:
        labels = tf.asarray()
        assert labels.dtype == np.uint16 and tf.is_imagej and tf.series[0].axes == "YX"
    assert labels.max() == 2 and labels[0, 0] == 0 and labels[2, 2] == 1
    assert io.read_calibration(paths["labels"]) == cal
    prov = io.read_provenance(paths["labels"])
    assert prov["a"] == 1 and prov["objects"] == {
        "classes": ["cell"],
        "min_size": "1um2",
        "split": None,
    }
    rows = paths["objects"].read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("label,slice,area_um2,")
    assert rows[1].split(",")[2] == "4" and rows[2].split(",")[2] == "2"
    header = rows[0].split(",")
    assert float(rows[1].split(",")[header.index("mean_probability")]) == pytest.approx(0.8)
    assert len(roifile.roiread(paths["rois"])) == 2
    assert '"classification":{"name":"cell"}' in paths["geojson"].read_text()


def test_a_three_class_models_border_pixels_go_back_and_provenance_says_so(
    tmp_path: Path,
) -> None:
    mask = np.zeros((20, 30), np.uint8)
    mask[5:15, 5:25] = 1
    mask[5:15, 13:17] = 2  # the border class between two touching cells
    probs = np.stack([mask == k for k in range(3)]).astype(np.float32)
    pred = Prediction(probs, ({},), (1,), border_classes=(2,))
    names = ("background", "cell", "border")
    writers = object_writers(("labels",), pred, mask, names, Labelling.make(), None, {})
    writers["labels"](tmp_path / "l.tif")
    labels = tifffile.imread(tmp_path / "l.tif")
    assert labels.max() == 2 and (labels > 0).sum() == 200  # the 40 border pixels given back
    assert io.read_provenance(tmp_path / "l.tif")["objects"]["border"] == ["border"]
