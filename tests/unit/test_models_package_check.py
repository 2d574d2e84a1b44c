"""unet_edge.models.package_check: a package's description, layout, graph and test tensors."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from unet_edge import ModelError, metadata
from unet_edge.config import Normalization
from unet_edge.engines.select import open_session
from unet_edge.geometry import TileGeometry
from unet_edge.models import package_check as pc
from unet_edge.models.package_check import Layout
from unet_edge.runtime import default_model_path


@pytest.fixture(scope="module")
def shipped() -> dict[str, Any]:
    info = metadata.read(default_model_path())
    return {"model": info.to_dict(), "layout": Layout.of(info.geometry).to_dict()}


def test_the_shipped_models_layout() -> None:
    layout = Layout.of(metadata.read(default_model_path()).geometry)
    assert layout == Layout(
        crop=4, halo=96, pad_before=96, pad_after=92, min_block=208, step=16, alignment=16
    )
    assert layout.geometry == TileGeometry(208, 16, 16, 0, 96)


def test_declared_accepts_the_shipped_description(shipped: dict[str, Any]) -> None:
    info, layout = pc.declared(shipped, "config", "p.zip")
    assert info.name == "isbi2012-default" and layout.halo == 96


def _with(d: dict[str, Any], section: str, **change: object) -> dict[str, Any]:
    return {**d, section: {**d[section], **change}}


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda d: [], "exactly model and layout"),
        (lambda d: {**d, "more": 1}, "exactly model and layout"),
        (lambda d: {**d, "layout": [1]}, "exactly the keys"),
        (lambda d: _with(d, "layout", extra=1), "exactly the keys"),
        (lambda d: _with(d, "layout", halo=True), "not sizes"),
        (lambda d: _with(d, "layout", halo=1 << 20), "not sizes"),
        (lambda d: _with(d, "layout", halo=95), "halo 95 (the network gives 96)"),
        (lambda d: {**d, "model": "x"}, "model must be a mapping"),
        (lambda d: _with(d, "model", schema="other"), "metadata schema"),
    ],
)
def test_declared_refusals(shipped: dict[str, Any], edit: Any, expected: str) -> None:
    with pytest.raises(ModelError) as e:
        pc.declared(edit(shipped), "config", "p.zip")
    assert str(e.value).startswith("p.zip: ") and expected in str(e.value)


def test_network_geometry_of_a_probed_description(shipped: dict[str, Any]) -> None:
    info = metadata.from_dict(shipped["model"])
    assert pc.network_geometry(info) is info.geometry or pc.network_geometry(info) == info.geometry
    g = {"min_size": 64, "step": 8, "alignment": 8, "shrink": 0, "margin": 24}
    arch = replace(info.architecture, extra={"probed": {"geometry": g}})
    assert pc.network_geometry(replace(info, architecture=arch)) == TileGeometry(64, 8, 8, 0, 24)
    arch = replace(info.architecture, extra={"probed": {"geometry": {"min_size": 64}}})
    with pytest.raises(ModelError, match="lacks"):
        pc.network_geometry(replace(info, architecture=arch))


def test_preprocessing_must_be_the_models_normalisation() -> None:
    ours = Normalization(mode="dtype_range")
    pc.check_preprocessing(Normalization(mode="fixed_range", low=0, high=255), ours, "p.zip")
    with pytest.raises(ModelError, match="is not its model's normalisation"):
        pc.check_preprocessing(Normalization(mode="fixed_range", low=0, high=4095), ours, "p.zip")
    with pytest.raises(ModelError, match="none unet-edge can express"):
        pc.check_preprocessing(None, ours, "p.zip")


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def test_load_npy() -> None:
    a = np.arange(12, dtype=np.float32).reshape(1, 1, 3, 4)
    assert np.array_equal(pc.load_npy(_npy(a), "test input", "p.zip"), a)
    for bad in (_npy(a)[:-8], b"not npy", _npy(np.array([None], object))[:0] + b"\x93NUMPY"):
        with pytest.raises(ModelError, match=r"not a plain \.npy"):
            pc.load_npy(bad, "test input", "p.zip")


def _variant(model: Path, layout: Layout) -> bytes:
    from unet_edge.training.package import variant_graph  # torch-free

    return variant_graph(onnx.load(str(model)), layout).SerializeToString()


def test_graph_check_sees_a_layout_that_lies(tiny_onnx: Path) -> None:
    info = metadata.read(tiny_onnx)
    layout = Layout.of(info.geometry)
    s = open_session(_variant(tiny_onnx, layout), "cpu")
    pc.check_graph(s, info, layout, "p.zip")
    lie = replace(layout, pad_before=layout.pad_before - 4, pad_after=layout.pad_after + 4)
    with pytest.raises(ModelError, match="zero border is 96/96 px before and 92/92") as e:
        pc.check_graph(s, info, lie, "p.zip")
    assert str(e.value).startswith("p.zip: ") and "package layout" in str(e.value)


def test_test_tensors_are_compared(tiny_onnx: Path) -> None:
    info = metadata.read(tiny_onnx)
    layout = Layout.of(info.geometry)
    s = open_session(_variant(tiny_onnx, layout), "cpu")
    x = np.random.default_rng(1).integers(0, 255, (1, 1, 224, 224)).astype(np.float32)
    from unet_edge import processing

    y = s.session.run_quietly(
        "image", "probabilities", processing.normalize(x[0, 0], info.normalization, 1)[None]
    )
    pc.check_tests(s, (x, y), info, info.normalization, "p.zip")
    with pytest.raises(ModelError, match=r"differs from its test output by up to 0\.5"):
        pc.check_tests(s, (x, y + 0.5), info, info.normalization, "p.zip")
    with pytest.raises(ModelError, match="gives shape"):
        pc.check_tests(s, (x, y[:, :, 1:]), info, info.normalization, "p.zip")


def test_the_shipped_model_is_recognised_by_its_weights(
    tiny_onnx: Path, shipped: dict[str, Any]
) -> None:
    model = onnx.load(str(default_model_path()))
    assert pc.shipped(model) == shipped
    assert pc.shipped(onnx.load(str(tiny_onnx))) is None
    model.graph.initializer[0].raw_data = bytes(len(model.graph.initializer[0].raw_data))
    assert pc.shipped(model) is None
