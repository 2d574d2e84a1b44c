"""Probing ONNX U-Nets without unet-edge metadata (unet_edge.models.probe), and running them
exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from unet_edge import Normalization, tiling
from unet_edge.errors import ModelError
from unet_edge.io import read_image
from unet_edge.models.probe import OutputKind, ProbeError, probe
from unet_edge.runtime import Segmenter, default_model_path

NORM = Normalization(mode="percentile", low=1, high=99.8, mean=0.5, std=0.25, clip=True)
SAMPLE = Path(__file__).resolve().parents[2] / "unet_edge" / "data" / "sample_isbi2012.png"


def stripped(path: Path, out: Path) -> Path:
    model = onnx.load(str(path))
    del model.metadata_props[:]
    onnx.save(model, str(out))
    return out


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return read_image(SAMPLE)[:301, :277]  # awkward, non-square


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The two foreign U-Nets of tests/foreign_nets.py, exported (a fixed-size copy too)."""
    pytest.importorskip("torch", reason="the foreign U-Nets are defined and exported with torch")
    import foreign_nets as fn

    d = tmp_path_factory.mktemp("foreign")
    same = fn.build(fn.SameNet())
    return {
        "same": fn.export(same, d / "same.onnx", 128),
        "valid": fn.export(fn.build(fn.ValidNet()), d / "valid.onnx", 124),
        "fixed": fn.export(same, d / "fixed.onnx", 128, fixed=True),
    }


def whole(seg: Segmenter, image: np.ndarray) -> np.ndarray:
    plan = tiling.whole_image_plan(image.shape[:2], seg.geometry)
    assert plan.n_tiles == 1
    run = seg.tile_run(plan, tiling.array_reader(image), seg.scaling_for(image))
    return run.run(seg.run_batch)


def test_shipped_model_without_metadata(tmp_path: Path) -> None:
    p = probe(stripped(default_model_path(), tmp_path / "plain.onnx"))
    g = p.geometry
    assert (g.halo, g.alignment, g.min_input, g.step, g.margin) == (92, 16, 188, 16, 0)
    assert (p.channels, p.out_channels, p.kind) == (1, 2, OutputKind.PROBABILITIES)
    assert p.receptive_field is None  # valid convolutions: nothing to crop


@pytest.mark.parametrize("fixture", ["tiny_onnx", "rgb_onnx", "same_onnx"])
def test_probe_agrees_with_the_metadata(
    fixture: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The project's own test nets, metadata stripped: probing finds what the metadata says."""
    path = request.getfixturevalue(fixture)
    g = Segmenter(path).geometry
    p = probe(stripped(path, tmp_path / "plain.onnx"))
    assert p.geometry.alignment == g.alignment
    if g.padding.value == "valid":
        assert (p.geometry.halo, p.geometry.min_input, p.geometry.step) == (
            g.halo,
            g.min_input,
            g.alignment,
        )
    else:  # measured receptive field + one period; the metadata's bound is analytic
        assert p.geometry.shrink == 0 and 0 < p.geometry.margin <= g.halo + g.alignment


def test_same_net_without_metadata_tiles_exactly(
    same_onnx: Path, image: np.ndarray, tmp_path: Path
) -> None:
    seg = Segmenter(stripped(same_onnx, tmp_path / "plain.onnx"), normalization=NORM, tile=200)
    assert seg.plan_for(image.shape[:2]).n_tiles > 4
    assert np.abs(seg.predict(image) - whole(seg, image)).max() <= 1e-5


@pytest.mark.slow
def test_monai_basic_unet(tmp_path: Path, image: np.ndarray) -> None:
    """MONAI's BasicUNet (same padding, depth 4): with instance norm (a statistic over the whole
    image) it is refused; with batch norm it is probed and tiled exactly."""
    pytest.importorskip("monai", reason="optional: MONAI's BasicUNet as a third foreign net")
    import foreign_nets as fn
    from monai.networks.nets import BasicUNet

    feats = (4, 4, 8, 8, 16, 4)
    inorm = fn.build(BasicUNet(spatial_dims=2, in_channels=1, out_channels=2, features=feats))
    with pytest.raises(ProbeError, match="not a local"):
        probe(fn.export(inorm, tmp_path / "instance.onnx", 128))
    net = BasicUNet(spatial_dims=2, in_channels=1, out_channels=2, features=feats, norm="batch")
    path = fn.export(fn.build(net), tmp_path / "batch.onnx", 128)
    seg = Segmenter(path, normalization=NORM, tile=400)
    assert (seg.geometry.alignment, seg.geometry.shrink) == (16, 0)
    big = read_image(SAMPLE)[:400, :377]
    assert seg.plan_for(big.shape[:2]).n_tiles > 4
    assert np.abs(seg.predict(big) - whole(seg, big)).max() <= 1e-5


@pytest.mark.parametrize(
    ("name", "tile", "shrink", "alignment", "kind"),
    [("same", 96, 0, 8, OutputKind.LOGITS), ("valid", 98, 14, 4, OutputKind.SIGMOID)],
)
def test_foreign_tiled_equals_whole(
    foreign: dict[str, Path],
    image: np.ndarray,
    name: str,
    tile: int,
    shrink: int,
    alignment: int,
    kind: OutputKind,
) -> None:
    seg = Segmenter(foreign[name], normalization=NORM, tile=tile)
    g = seg.geometry
    assert (seg.geometry.shrink, g.alignment, seg.source.probe.kind) == (shrink, alignment, kind)  # type: ignore[union-attr]
    assert (g.margin > 0) == (name == "same")  # zero padding reaches into same-padded tiles
    tiled = seg.predict(image)
    assert seg.plan_for(image.shape[:2]).n_tiles > 4
    ref = whole(seg, image)
    assert tiled.shape == (2, *image.shape)
    assert np.abs(tiled - ref).max() <= 1e-5
    np.testing.assert_allclose(tiled.sum(axis=0), 1.0, atol=1e-5)  # probabilities after all


def test_fixed_shape_graph_runs_with_its_one_tile(
    foreign: dict[str, Path], image: np.ndarray
) -> None:
    seg = Segmenter(foreign["fixed"], normalization=NORM)
    assert seg.geometry.legal_inputs(4096) == [128]
    assert seg.plan_for(image.shape[:2]).tile_shape == (128, 128)
    dynamic = Segmenter(foreign["same"], normalization=NORM)
    assert np.abs(seg.predict(image) - whole(dynamic, image)).max() <= 1e-5


def _graph(path: Path, nodes: list, inp: list, out: list) -> Path:
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, inp)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out)],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, str(path))
    return path


def test_not_an_image_to_image_network(tmp_path: Path) -> None:
    classifier = _graph(
        tmp_path / "cls.onnx",
        [
            helper.make_node("GlobalAveragePool", ["x"], ["p"]),
            helper.make_node("Flatten", ["p"], ["y"]),
        ],
        ["n", 1, "h", "w"],
        ["n", 1],
    )
    with pytest.raises(ProbeError, match="classifier"):
        probe(classifier)
    volume = _graph(
        tmp_path / "3d.onnx",
        [helper.make_node("Relu", ["x"], ["y"])],
        ["n", 1, "d", "h", "w"],
        ["n", 1, "d", "h", "w"],
    )
    with pytest.raises(ProbeError, match="3-D"):
        probe(volume)
    centred = _graph(  # subtracts the image mean: every output pixel depends on every input pixel
        tmp_path / "global.onnx",
        [
            helper.make_node("ReduceMean", ["x"], ["m"], axes=[2, 3]),
            helper.make_node("Sub", ["x", "m"], ["y"]),
        ],
        ["n", 1, "h", "w"],
        ["n", 1, "h", "w"],
    )
    with pytest.raises(ProbeError, match="not a local"):
        probe(centred)


def test_foreign_model_needs_normalization(tmp_path: Path) -> None:
    plain = stripped(default_model_path(), tmp_path / "plain.onnx")
    with pytest.raises(ModelError, match="normalis") as e:
        Segmenter(plain)
    assert e.value.option == "normalization"


def test_cli_info_and_run_a_foreign_model(foreign: dict[str, Path], tmp_path: Path) -> None:
    from click.testing import CliRunner

    from unet_edge.cli import main

    runner = CliRunner()
    r = runner.invoke(main, ["info", "-m", str(foreign["valid"])])
    assert r.exit_code == 0, r.output
    assert "probed" in r.output and "halo 14 px" in r.output and "alignment 4 px" in r.output
    args = ["run", str(SAMPLE), "-m", str(foreign["valid"]), "-o", str(tmp_path)]
    r = runner.invoke(main, args)
    assert r.exit_code == 1 and "--normalization" in r.output
    r = runner.invoke(main, [*args, "--normalization", "percentile:1,99.8,mean=0.5,std=0.25,clip"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "sample_isbi2012_mask.png").is_file()
    r = runner.invoke(main, [*args, "--normalization", "percentile:1"])
    assert r.exit_code == 2 and "percentile:LOW,HIGH" in r.output
