"""Shipped models by name: -m isbi2012 / -m nuclei, a path winning over a name, unknown names."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from unet_edge import metadata
from unet_edge.errors import ModelError
from unet_edge.models.shipped import DEFAULT, SHIPPED, describe, resolve_model, shipped_path


def test_default_and_names_resolve_to_files_in_the_package():
    assert resolve_model(None) == shipped_path(DEFAULT)
    assert shipped_path("isbi2012").name == "default.onnx"
    for name in SHIPPED:
        path = resolve_model(name)
        assert path.is_file() and path.parent.name == "data"


def test_an_existing_path_wins_over_a_name(tmp_path: Path):
    own = tmp_path / "nuclei"
    own.write_bytes(b"not a model")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert resolve_model("nuclei") == Path("nuclei")
    finally:
        os.chdir(cwd)


def test_unknown_names_list_the_shipped_ones():
    with pytest.raises(ModelError, match="isbi2012, nuclei"):
        resolve_model("nucleii")
    with pytest.raises(ModelError, match="unknown model name"):
        shipped_path("mito")


def test_paths_that_do_not_exist_stay_paths():
    # opening them later says the file is missing; a name error would hide the typo's kind
    assert resolve_model("missing/model.onnx") == Path("missing/model.onnx")
    assert resolve_model("model.onnx") == Path("model.onnx")


def test_the_nuclei_model_names_its_object_class():
    info = metadata.read(shipped_path("nuclei"))
    assert info.class_names == ("background", "nucleus")
    assert [info.class_names[i] for i in info.object_classes] == ["nucleus"]
    assert "generated" in info.provenance["training_data"]


def test_describe_reads_the_models_own_metadata():
    d = describe("nuclei")
    assert d["objects"] == ["nucleus"] and d["file"].endswith("nuclei.onnx")
    e = describe("isbi2012")
    assert "cell" in e["classes"]
