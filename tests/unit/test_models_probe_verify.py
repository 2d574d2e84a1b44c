"""unet_edge.models.probe_verify: the checks that refuse a wrong geometry before it is used."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import onnx
import pytest

from unet_edge.errors import ProbeError
from unet_edge.models.probe import probe
from unet_edge.models.probe_run import Graph, Runner
from unet_edge.models.probe_verify import check_shift, check_structure, check_tiling, influence


def _plain(path: Path, out: Path) -> Path:
    m = onnx.load(str(path))
    del m.metadata_props[:]
    onnx.save(m, str(out))
    return out


@pytest.fixture(scope="module")
def same(same_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    path = _plain(same_onnx, tmp_path_factory.mktemp("v") / "same.onnx")
    return path, probe(path)


def _runner(path: Path) -> Runner:
    return Runner(Graph(path, path.name), 1, None, path.name, 60)


def test_the_probed_geometry_passes_and_a_smaller_margin_does_not(
    same: tuple[Path, object],
) -> None:
    path, p = same
    g = p.geometry  # type: ignore[attr-defined]
    run = _runner(path)
    check_tiling(run, g, 2)
    check_structure(run, g)
    too_small = replace(g, margin=g.margin // 4)
    with pytest.raises(
        ProbeError, match=r"same.onnx: the probed geometry .* does not tile exactly"
    ):
        check_tiling(run, too_small, 2)
    with pytest.raises(ProbeError, match="shifting the input by"):
        check_structure(run, too_small)


def test_influence_is_centred_for_a_unet(same: tuple[Path, object]) -> None:
    path, p = same
    g = p.geometry  # type: ignore[attr-defined]
    inf = check_shift(_runner(path), g, p.receptive_field)  # type: ignore[attr-defined]
    assert max(map(abs, inf.shift)) < 1 and inf.radius >= p.receptive_field  # type: ignore[attr-defined]
    one = influence(_runner(path), 256, 0, (0,))
    assert one.radius > 0


def test_valid_net_geometry_tiles_exactly(tiny_onnx: Path, tmp_path: Path) -> None:
    path = _plain(tiny_onnx, tmp_path / "tiny.onnx")
    g = probe(path).geometry
    run = _runner(path)
    check_tiling(run, g, 2)
    check_structure(run, g)
    assert run.runs > 4
