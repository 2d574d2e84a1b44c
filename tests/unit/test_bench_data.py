"""The bench's images (unet_edge/bench/data.py): the packaged sample or a folder with image/
and label/, which images calibrate and which check fidelity, and the mosaics made of them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bench_fixtures import make_tiny_data

from unet_edge import bench
from unet_edge.bench.data import choose_images
from unet_edge.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three crops of the packaged sample in image/, thresholded as labels in label/."""
    return make_tiny_data(tmp_path_factory.mktemp("bench_data"))


def test_synth_image_mirrors_real_slices() -> None:
    rng = np.random.default_rng(0)
    slices = [rng.integers(0, 255, (64, 48), dtype=np.uint8) for _ in range(3)]
    im = bench.synth_image(slices, 150)
    assert im.shape == (150, 150) and im.dtype == np.uint8
    assert np.array_equal(im[:64, :48], slices[0])
    assert np.array_equal(im[:64, 48:96], slices[1][:, ::-1])
    assert np.array_equal(im[64:128, :48], slices[(1 * 4 + 0) % 3][::-1])
    rgb = bench.synth_image([rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)], 60)
    assert rgb.shape == (60, 60, 3) and np.array_equal(rgb[:20, 30:60], rgb[:20, :30][:, ::-1])


def test_data_folder_choice_and_errors(tiny_data: Path, tiny_onnx: Path, tmp_path: Path) -> None:
    data = bench.find_data(tiny_data)
    assert data.names == ("s0", "s1", "s2") and set(data.labels) == set(data.names)
    cfg = bench.BenchConfig.quick_config(tiny_onnx, tiny_data, tmp_path)
    assert choose_images(data, cfg) == (("s0",), ("s2",), [])
    sample = bench.find_data(None)
    cal, fid, notes = choose_images(sample, cfg)
    assert cal == fid == ("sample_isbi2012",) and "no other image" in notes[0]
    (tmp_path / "empty" / "image").mkdir(parents=True)
    with pytest.raises(DataError, match="no images in"):
        bench.find_data(tmp_path / "empty")
    with pytest.raises(DataError, match="not found"):
        choose_images(
            data, bench.BenchConfig.quick_config(tiny_onnx, None, tmp_path, fidelity=("x",))
        )
    with pytest.raises(ConfigError, match="unknown backend"):
        bench.BenchConfig.quick_config(tiny_onnx, None, tmp_path, backends=("ort-fp33",))
