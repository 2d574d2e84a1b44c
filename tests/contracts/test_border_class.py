"""A three-class model's border class, stated in its metadata (``output.labelling.border``):
in memory its pixels are given back to the nearest object (run --labels, Segmenter.label,
Prediction.labels, all equal), and window by window the same, and the provenance says which."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner
from onnx_models import save_edited

from unet_edge import Segmenter, io
from unet_edge.cli import main
from unet_edge.config import UNetConfig
from unet_edge.objects.labels import label_classes

NAMES = ["background", "cell", "border"]


@pytest.fixture(scope="module")
def three_class(tmp_path_factory: pytest.TempPathFactory) -> Path:
    def state(d: dict) -> None:  # type: ignore[type-arg]
        d["output"].update(classes=NAMES, labelling={"border": "border"})

    path = tmp_path_factory.mktemp("border") / "three.onnx"
    return save_edited(path, UNetConfig(base_width=2, depth=2, classes=3), state)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(4)
    pixels = np.cumsum(np.cumsum(rng.random((150, 170)), 0), 1)
    path = tmp_path_factory.mktemp("img") / "img.tif"
    tifffile.imwrite(path, (pixels / pixels.max() * 4095).astype(np.uint16))
    return path


def test_in_memory_gives_the_border_back_and_says_so(
    three_class: Path, image: Path, tmp_path: Path
):
    seg = Segmenter(three_class)
    assert seg.info.border_classes == (2,) and seg.info.object_classes == (1,)
    pixels = tifffile.imread(image)
    mask = seg.segment(pixels)
    assert (mask == 2).any() and (mask == 1).any()  # the random model draws every class
    whole = label_classes(mask, (1,), border_classes=(2,))
    cores = label_classes(mask, (1,))
    assert (whole > 0).sum() > (cores > 0).sum()  # border pixels were given back
    assert np.array_equal(seg.label(pixels), whole)
    assert np.array_equal(seg.analyze(pixels).labels, whole)
    r = CliRunner().invoke(
        main, ["run", str(image), "-m", str(three_class), "--labels", "-o", str(tmp_path)]
    )
    assert r.exit_code == 0, r.output
    assert np.array_equal(tifffile.imread(tmp_path / "img_labels.tif"), whole)
    assert io.read_provenance(tmp_path / "img_labels.tif")["objects"]["border"] == ["border"]


def test_window_by_window_gives_the_border_back_as_in_memory(
    three_class: Path, image: Path, tmp_path: Path
):
    args = ["run", str(image), "-m", str(three_class), "--labels", "--large", "-o", str(tmp_path)]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    mask = Segmenter(three_class).segment(tifffile.imread(image))
    whole = label_classes(mask, (1,), border_classes=(2,))
    assert np.array_equal(tifffile.imread(tmp_path / "img_labels.tif"), whole)
    assert io.read_provenance(tmp_path / "img_labels.tif")["objects"]["border"] == ["border"]


def test_info_says_the_border_is_given_back(three_class: Path):
    r = CliRunner().invoke(main, ["info", "-m", str(three_class)])
    assert r.exit_code == 0, r.output
    assert "border pixels given back" in r.output
