"""Opening a model by what it is (unet_edge/models/open.py): a unet-edge graph describes
itself, any other ONNX U-Net needs a normalisation and is probed, a package is a package."""

from __future__ import annotations

from pathlib import Path

import onnx
import onnx_models
import pytest

from unet_edge import metadata
from unet_edge.config import Normalization, UNetConfig
from unet_edge.errors import ModelError
from unet_edge.models import is_package, open_model

SMALL = UNetConfig(base_width=2, depth=2, padding="same")


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small U-Net's graph without unet-edge metadata: as another tool exports it."""
    path = tmp_path_factory.mktemp("foreign") / "other.onnx"
    model = onnx_models.build(SMALL, onnx_models.random_weights(SMALL))
    onnx.save_model(model, str(path))
    return path


def test_a_unet_edge_graph_describes_itself(tiny_onnx: Path) -> None:
    src = open_model(tiny_onnx)
    info = metadata.read(tiny_onnx)
    assert src.origin == "unet-edge" and src.onnx == tiny_onnx and src.probe is None
    assert src.info == info and src.geometry == info.geometry
    assert src.describe() == info.geometry.describe()
    own = Normalization(mode="fixed_range", low=0, high=4095)
    replaced = open_model(tiny_onnx, own)
    assert replaced.info.normalization == own and replaced.info.name == info.name


def test_a_foreign_graph_needs_a_normalisation_then_is_probed(foreign: Path) -> None:
    with pytest.raises(ModelError, match="has no unet-edge metadata") as e:
        open_model(foreign)
    assert e.value.option == "normalization" and str(foreign) in str(e.value)
    norm = Normalization(mode="percentile", low=1, high=99.8)
    src = open_model(foreign, norm)
    assert src.origin == "probed" and src.probe is not None
    assert src.info.normalization == norm and src.info.name == "other"
    assert src.info.classes == SMALL.classes and src.geometry.alignment == 4  # depth 2
    assert src.describe() == src.probe.describe()
    assert open_model(foreign, probe_only=True).info.normalization == Normalization()


def test_what_is_not_a_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"model file .*none\.onnx does not exist"):
        open_model(tmp_path / "none.onnx")
    with pytest.raises(ModelError, match="does not exist"):
        open_model(tmp_path)  # a folder


@pytest.mark.parametrize(
    ("name", "package"),
    [("m.zip", True), ("rdf.yaml", True), ("M.YML", True), ("m.onnx", False), ("m.pt", False)],
)
def test_packages_by_name(name: str, package: bool) -> None:
    assert is_package(Path(name)) is package
