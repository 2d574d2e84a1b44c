"""The torch-free test models (tests/onnx_models.py) are real U-Nets with the right geometry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx_models
import pytest

from unet_edge import metadata
from unet_edge.config import UNetConfig
from unet_edge.geometry import Geometry
from unet_edge.runtime import Segmenter

CONFIGS = [
    UNetConfig(base_width=2, depth=0),
    UNetConfig(base_width=2, depth=1),
    UNetConfig(base_width=3, depth=2),
    UNetConfig(base_width=2, depth=3),
    UNetConfig(base_width=2, depth=4),
    UNetConfig(in_channels=3, classes=3, depth=2, base_width=2),
    UNetConfig(base_width=2, depth=3, padding="same", batch_norm=True),
    UNetConfig(base_width=2, depth=2, batch_norm=True),
    UNetConfig(base_width=2, depth=2, convs_per_level=3, kernel_size=5),
]


def _id(c: UNetConfig) -> str:
    extra = ("-bn" if c.batch_norm else "") + (f"-k{c.kernel_size}" if c.kernel_size != 3 else "")
    return f"d{c.depth}w{c.base_width}c{c.in_channels}k{c.classes}-{c.padding.value}{extra}"


def _sizes(g: Geometry) -> list[tuple[int, int]]:
    """Three legal (height, width) pairs, square and not, the smallest one included."""
    legal = g.legal_inputs(g.min_input + 5 * g.alignment)
    return [(legal[0], legal[0]), (legal[1], legal[4]), (legal[5], legal[2])]


@pytest.mark.parametrize("config", CONFIGS, ids=_id)
def test_output_size_follows_the_geometry(config: UNetConfig) -> None:
    g = Geometry.from_config(config)
    model = onnx_models.build(config, onnx_models.random_weights(config))
    rng = np.random.default_rng(0)
    for h, w in _sizes(g):
        x = rng.standard_normal((2, config.in_channels, h, w)).astype(np.float32)
        y = onnx_models.run(model, x)
        out = (g.network_output_size(h), g.network_output_size(w))
        assert y.shape == (2, config.classes, *out)
        if config.padding.value == "valid":
            assert out == (h - 2 * g.halo, w - 2 * g.halo)
        else:
            assert out == (h, w)
        np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-5)


def test_height_and_width_are_symbolic() -> None:
    model = onnx_models.make_model(UNetConfig(base_width=2, depth=2))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 1, "height", "width"]
    assert "Shape" in {n.op_type for n in model.graph.node}  # the crop is computed, not fixed


def test_weights_round_trip_and_are_seeded() -> None:
    config = UNetConfig(base_width=2, depth=2, batch_norm=True)
    w = onnx_models.random_weights(config, seed=3)
    back = onnx_models.weights_of(onnx_models.build(config, w))
    assert sorted(back) == sorted(w)
    assert all(np.array_equal(back[k], w[k]) for k in w)
    again = onnx_models.random_weights(config, seed=3)
    other = onnx_models.random_weights(config, seed=4)
    assert all(np.array_equal(again[k], w[k]) for k in w)
    assert not np.array_equal(other["head.weight"], w["head.weight"])


def test_segmenter_accepts_the_file(tmp_path: Path) -> None:
    path = onnx_models.save(tmp_path / "m.onnx", UNetConfig(base_width=2, depth=2), name="m")
    info = metadata.read(path)
    assert info.name == "m" and info.geometry.halo == Geometry(depth=2).halo
    assert onnx.load(str(path)).graph.output[0].name == info.output_name
    with Segmenter(path) as seg:
        probs = seg.predict(np.random.default_rng(0).integers(0, 256, (37, 51), np.uint8))
    assert probs.shape == (2, 37, 51) and probs.dtype == np.float32


@pytest.mark.parametrize("config", CONFIGS, ids=_id)
def test_same_function_as_the_torch_unet(config: UNetConfig) -> None:
    """With the same weights, the onnx.helper graph computes what the torch UNet computes."""
    torch = pytest.importorskip("torch")
    from unet_edge.training.model import UNet

    weights = onnx_models.random_weights(config, seed=1)
    net = UNet(config).eval()
    missing, unexpected = net.load_state_dict(
        {k: torch.from_numpy(v) for k, v in weights.items()}, strict=False
    )
    assert unexpected == [] and all(k.endswith("num_batches_tracked") for k in missing)
    logits = onnx_models.build(config, weights, softmax=False)
    probs = onnx_models.build(config, weights)
    rng = np.random.default_rng(2)
    for h, w in _sizes(Geometry.from_config(config)):
        x = rng.standard_normal((2, config.in_channels, h, w)).astype(np.float32)
        with torch.no_grad():
            ref = net(torch.from_numpy(x))
        got = onnx_models.run(logits, x)
        assert got.shape == tuple(ref.shape)
        scale = float(ref.abs().max())
        assert np.max(np.abs(got - ref.numpy())) <= 1e-5 * max(scale, 1.0), (h, w)
        p = onnx_models.run(probs, x)
        assert np.max(np.abs(p - torch.softmax(ref, 1).numpy())) <= 1e-5
