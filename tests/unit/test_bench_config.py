"""What the bench measures (unet_edge/bench/config.py): a configuration checked when made,
the quick one, and what a missing optional package leaves out, said before measuring."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from unet_edge import bench
from unet_edge.bench import config
from unet_edge.bench.config import ALL_BACKENDS, BenchConfig
from unet_edge.errors import ConfigError, DataError, ModelError


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"min_repeats": 0}, r"need 1 <= min_repeats <= max_repeats, got 0, 20"),
        ({"min_repeats": 5, "max_repeats": 4}, "got 5, 4"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"sizes": ()}, "sizes positive and not empty"),
        ({"sizes": (512, 0)}, "sizes positive"),
        ({"n_fidelity": 0}, "n_calibration and n_fidelity must be >= 1"),
        ({"backends": ()}, r"unknown backend\(s\) \[\]"),
        ({"backends": ("ort-fp32", "tensorrt-fp8")}, r"unknown backend\(s\) \['tensorrt-fp8'\]"),
    ],
)
def test_a_bad_configuration_is_refused(tmp_path: Path, kw: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        BenchConfig(model=tmp_path / "m.onnx", data=None, out_dir=tmp_path, **kw)  # type: ignore[arg-type]


def test_the_quick_configuration_and_its_overrides(tmp_path: Path) -> None:
    full = BenchConfig(model=tmp_path / "m.onnx", data=None, out_dir=tmp_path)
    assert full.backends == ALL_BACKENDS and full.sizes == (512, 1024, 2048, 4096)
    assert not full.quick and full.min_repeats == 3
    quick = BenchConfig.quick_config(tmp_path / "m.onnx", None, tmp_path, sizes=(256,))
    assert quick.quick and quick.sizes == (256,) and quick.sweep_size == 512
    assert (quick.min_repeats, quick.max_repeats, quick.min_seconds) == (1, 1, 0.0)
    assert (quick.n_calibration, quick.n_fidelity) == (1, 1)
    assert bench.STAGES == ("read", "normalise", "tile", "infer", "stitch", "write")


def test_preflight_names_what_is_left_out_and_how_to_get_it(
    tiny_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("torch", "psutil", "openvino"):
        monkeypatch.setitem(sys.modules, name, None)  # `import name` now raises ImportError
    cfg = BenchConfig.quick_config(tiny_onnx, None, tmp_path, backends=("torch", "ort-fp32"))
    left = bench.preflight(cfg)
    assert left["torch"] == (
        "PyTorch baseline not measured: torch is not installed (pip install 'unet-edge[train]')"
    )
    assert left["memory"] == (
        "peak memory not measured: psutil is not installed (pip install psutil)"
    )
    assert "openvino" not in left  # not asked for
    assert "rand_error" not in left  # the packaged sample has no labels
    ov = BenchConfig.quick_config(tiny_onnx, None, tmp_path, backends=("openvino-fp32",))
    assert bench.preflight(ov)["openvino"].startswith("OpenVINO not measured: openvino is not")
    assert set(config.OPTIONAL) == {"torch", "openvino", "plot", "memory", "rand_error"}


def test_preflight_raises_at_once_for_a_missing_model_or_data(
    tiny_onnx: Path, tmp_path: Path
) -> None:
    with pytest.raises(ModelError, match=r"none\.onnx does not exist"):
        bench.preflight(BenchConfig.quick_config(tmp_path / "none.onnx", None, tmp_path))
    with pytest.raises(DataError, match=r"data folder .*nodata does not exist or is not a folder"):
        bench.preflight(BenchConfig.quick_config(tiny_onnx, tmp_path / "nodata", tmp_path))
