from __future__ import annotations

import json
from pathlib import Path

import pytest

from unet_edge import metadata
from unet_edge.config import Normalization, UNetConfig
from unet_edge.errors import ModelError


def info() -> metadata.ModelInfo:
    return metadata.ModelInfo(UNetConfig(base_width=8), Normalization(), ("membrane", "cell"))


def test_round_trip_and_derived_geometry() -> None:
    d = json.loads(info().to_json())
    assert d["schema_version"] == metadata.SCHEMA_VERSION
    assert d["geometry"]["halo"] == 92 and d["geometry"]["alignment"] == 16
    assert d["border"] == "symmetric"
    assert metadata.from_props({metadata.KEY: info().to_json()}) == info()


def test_labelling_rule_round_trips_and_defaults_to_none() -> None:
    assert info().labelling == {}
    assert "labelling" not in json.loads(info().to_json())["output"]
    rule = {"split": "watershed", "min_size": "10px"}
    stated = metadata.ModelInfo(
        UNetConfig(base_width=8), Normalization(), ("background", "nucleus"), labelling=rule
    )
    assert json.loads(stated.to_json())["output"]["labelling"] == rule
    assert metadata.from_props({metadata.KEY: stated.to_json()}).labelling == rule


def test_a_stated_border_class_is_given_back_unless_it_is_an_object_class() -> None:
    names = ("background", "cell", "border")
    three = UNetConfig(base_width=8, classes=3)
    model = metadata.ModelInfo(three, Normalization(), names, labelling={"border": "border"})
    assert model.object_classes == (1,) and model.border_classes == (2,)
    assert metadata.from_props({metadata.KEY: model.to_json()}).border_classes == (2,)
    assert metadata.ModelInfo(three, Normalization(), names).border_classes == ()
    with pytest.raises(ModelError, match="other than the object classes"):
        metadata.ModelInfo(
            three,
            Normalization(),
            names,
            objects=("cell", "border"),
            labelling={"border": "border"},
        )


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: d.pop("border"), "missing key 'border'"),
        (lambda d: d["input"].pop("normalization"), "missing key input.'normalization'"),
        (lambda d: d.update(schema_version=99), "version 99 is not supported"),
        (lambda d: d["architecture"].update(depth="four"), "invalid model metadata"),
        (lambda d: d["output"].update(classes=["a"]), "1 class names"),
        (lambda d: d.update(precision="fp8"), "unknown precision"),
        (lambda d: d["output"].update(labelling={"split": "voronoi"}), "labelling.split"),
        (lambda d: d["output"].update(labelling={"min": "10px"}), "output.labelling must"),
        (lambda d: d["output"].update(labelling=["watershed"]), "output.labelling must"),
        (lambda d: d["output"].update(labelling={"border": "edge"}), "border class 'edge'"),
    ],
)
def test_invalid_metadata_is_specific(mutate, match: str) -> None:  # type: ignore[no-untyped-def]
    d = json.loads(info().to_json())
    mutate(d)
    with pytest.raises(ModelError, match=match):
        metadata.from_props({metadata.KEY: json.dumps(d)})


def test_missing_and_garbled() -> None:
    with pytest.raises(ModelError, match="no unet-edge metadata"):
        metadata.from_props({"other": "1"})
    with pytest.raises(ModelError, match="not valid JSON"):
        metadata.from_props({metadata.KEY: "{"})


def test_read_from_file(tiny_onnx: Path) -> None:
    mi = metadata.read(tiny_onnx)
    assert mi.geometry.halo == 92 and mi.name == "tiny"
