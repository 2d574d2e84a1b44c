"""Objects in the napari plugin: NAME_labels.tif opens as instance labels at its scale with
the measurements as the layer's features; the widget adds the same labels and features.

The reader and the layer data need no napari and run everywhere; the viewer and widget tests
need the [napari] extra and a display (``make test-napari``, under xvfb-run) and skip elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from unet_edge import Segmenter
from unet_edge.cli import main
from unet_edge.io import read_image
from unet_edge.napari import _reader, _segment

SAMPLE = Path(__file__).resolve().parents[2] / "unet_edge" / "data" / "sample_isbi2012.png"


def _run(tmp_path: Path, image: np.ndarray, *flags: str) -> Path:
    """``unet-edge run --labels`` on ``image`` saved with 0.004 um pixels; the output folder."""
    tmp_path.mkdir(exist_ok=True)
    source = tmp_path / "em.tif"
    meta = {"unit": "um", **({"axes": "ZYX"} if image.ndim == 3 else {})}
    tifffile.imwrite(source, image, imagej=True, resolution=(250, 250), metadata=meta)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["run", str(source), "-o", str(out), "-q", "--labels", *flags])
    assert r.exit_code == 0, r.output
    return out


def test_reader_opens_labels_with_scale_and_the_table_as_features(tmp_path: Path) -> None:
    image = read_image(SAMPLE)[:160, :200]
    out = _run(tmp_path, image, "--measure")
    path = out / "em_labels.tif"
    assert _reader.get_reader(str(path)) is _reader.read
    [(data, kwargs, kind)] = _reader.read(str(path))
    with Segmenter() as seg:
        labels = seg.label(image)
    assert kind == "labels" and kwargs["name"] == "em labels"
    assert np.array_equal(data, labels)
    assert kwargs["scale"] == pytest.approx((0.004, 0.004))
    assert kwargs["units"] == ("micrometer", "micrometer")
    features = kwargs["features"]
    assert list(features["index"]) == list(range(1, int(labels.max()) + 1))
    counts = np.bincount(labels.ravel())[1:]
    assert features["area_um2"] == pytest.approx(counts * 0.004**2, rel=1e-9)
    assert kwargs["metadata"]["provenance"]["objects"]["classes"] == ["cell"]


def test_reader_opens_stack_labels_without_features(tmp_path: Path) -> None:
    image = read_image(SAMPLE)
    out = _run(tmp_path, np.stack([image[:100, :120], image[100:200, :120]]), "--measure")
    [(data, kwargs, kind)] = _reader.read(str(out / "em_labels.tif"))
    assert kind == "labels" and data.shape == (2, 100, 120) and "features" not in kwargs
    assert kwargs["metadata"]["objects"]["slice"][-1] == 2
    no_csv = _run(tmp_path / "b", image[:64, :64])
    [(_, kwargs, _)] = _reader.read(str(no_csv / "em_labels.tif"))
    assert "features" not in kwargs and "objects" not in kwargs["metadata"]


def test_widget_layers_measure_in_the_input_layers_units() -> None:
    image = read_image(SAMPLE)[:96, :128]
    with Segmenter() as seg:
        pred = seg.analyze(image)
    place = {"scale": (0.5, 0.25), "translate": (0.0, 0.0), "units": ("micrometer",) * 2}
    labels, table = _segment.objects_of(pred, image, place)
    assert np.array_equal(labels, pred.labels) and table.unit == "um"
    counts = np.bincount(labels.ravel())[1:]
    assert table["area_um2"] == pytest.approx(counts * 0.125)
    layers = _segment.result_layers(
        pred, "em", place, {}, ["membrane", "cell"], False, (labels, table)
    )
    (_, _, mask_kind), (_, kwargs, kind) = layers
    assert mask_kind == kind == "labels" and kwargs["name"] == "em labels"
    assert kwargs["scale"] == (0.5, 0.25) and list(kwargs["features"]["index"]) == list(
        table["label"]
    )
    _, px = _segment.objects_of(pred, image, {"scale": (1.0, 1.0), "units": None})
    assert px.unit == "px"


# -- with napari --------------------------------------------------------------------------


def test_viewer_opens_labels_with_sortable_features(viewer: Any, tmp_path: Path) -> None:
    image = read_image(SAMPLE)[:128, :128]
    out = _run(tmp_path, image, "--measure")
    [layer] = viewer.open(str(out / "em_labels.tif"), plugin="unet-edge")
    assert layer.name == "em labels" and layer.data.max() == len(layer.features)
    assert tuple(layer.scale) == pytest.approx((0.004, 0.004))
    table = layer.features  # a pandas DataFrame: napari's table widget sorts it by column
    assert list(table["index"]) == list(range(1, len(table) + 1))
    assert table.sort_values("area_um2")["area_um2"].is_monotonic_increasing


def test_widget_adds_instance_labels_and_measurements(viewer: Any, qtbot: Any) -> None:
    from unet_edge.napari._widget import SegmentWidget

    image = read_image(SAMPLE)[:160, :200]
    viewer.add_image(image, name="crop", scale=(0.004, 0.004), units=("micrometer", "micrometer"))
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.objects_box.setChecked(True)
    assert widget.run() is not None
    qtbot.waitUntil(widget.run_button.isEnabled, timeout=120_000)
    assert widget.status.text().startswith("done"), widget.status.text()
    layer = viewer.layers["crop labels"]
    with Segmenter() as seg:
        assert np.array_equal(layer.data, seg.label(image))
    counts = np.bincount(layer.data.ravel())[1:]
    assert list(layer.features["area_um2"]) == pytest.approx(counts * 0.004**2, rel=1e-9)
    assert tuple(layer.scale) == (0.004, 0.004)
