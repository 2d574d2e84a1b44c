"""The napari widget segments a layer at the model's pixel size (issue 20's leftover): the
layer's scale when its units are a length, or the pixel size stated in the widget's field;
the result layers stay on the input layer's grid, and the status line says what was done.

The first test needs neither napari nor Qt. The widget tests need the ``[napari]`` extra,
pytest-qt and a display with OpenGL: ``make test-napari`` runs them under ``xvfb-run``;
elsewhere they skip, saying why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from unet_edge import Segmenter
from unet_edge.io import read_image
from unet_edge.napari import _segment

SAMPLE = Path(__file__).resolve().parents[2] / "unet_edge" / "data" / "sample_isbi2012.png"


@pytest.fixture(scope="module")
def em_8nm() -> np.ndarray:
    """A 4 nm/px ISBI crop as if imaged at 8 nm/px: 2x2 pixels averaged, (128, 128) uint8."""
    crop = read_image(SAMPLE)[:256, :256].astype(np.float32)
    return crop.reshape(128, 2, 128, 2).mean(axis=(1, 3)).round().astype(np.uint8)


@pytest.fixture(scope="module")
def shipped() -> Segmenter:
    return Segmenter()  # the widget's default model, trained at 0.004 µm per pixel


def _drain(steps: Any) -> Any:
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value


def test_a_layer_in_nanometres_is_segmented_as_segment_does_at_that_pixel_size(
    em_8nm: np.ndarray, shipped: Segmenter
) -> None:
    place = {"scale": (8.0, 8.0), "translate": (0.0, 0.0), "units": ("nanometer", "nanometer")}
    rescale, said = _segment.pixel_size_for(shipped.info.pixel_size, None, place, 2)
    pred = _drain(_segment.segment_steps(shipped, em_8nm, rescale))
    assert np.array_equal(pred.mask, shipped.segment(em_8nm, pixel_size=0.008))
    assert not np.array_equal(pred.mask, shipped.segment(em_8nm))  # resampling changed it
    assert pred.rescale["factor"] == [2.0, 2.0] and not pred.rescale["pixel_size_stated"]
    assert "resampled x2" in said
    assert _segment.run_shape(pred) == (256, 256)  # the model ran on its own pixel size's grid
    plan = _segment.provenance(shipped, pred, "em")["tile_plan"]
    assert plan == repr(shipped.plan_for((256, 256))) != repr(shipped.plan_for((128, 128)))


# -- in a viewer ---------------------------------------------------------------------------


def _widget(viewer: Any) -> Any:
    from unet_edge.napari._widget import SegmentWidget

    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget)
    return widget


def _run(widget: Any, qtbot: Any, layer: str, field: str = "") -> str:
    """Run the widget on ``layer`` with ``field`` in the pixel size field; its status line."""
    widget.layer_box.setCurrentText(layer)
    widget.pixel_edit.setText(field)
    assert widget.run() is not None
    qtbot.waitUntil(widget.run_button.isEnabled, timeout=120_000)
    return str(widget.status.text())


def test_the_widget_resamples_a_calibrated_layer_and_overlays_the_result_on_it(
    viewer: Any, qtbot: Any, em_8nm: np.ndarray, shipped: Segmenter
) -> None:
    viewer.add_image(em_8nm, name="em", scale=(8.0, 8.0), translate=(40.0, 80.0), units="nm")
    widget = _widget(viewer)
    widget.objects_box.setChecked(True)
    status = _run(widget, qtbot, "em")
    assert status.startswith("done") and status.endswith(
        "pixel size 0.008 µm (the layer's): resampled x2 to the model's 0.004 µm and back"
    ), status
    mask, labels = viewer.layers["em mask"], viewer.layers["em labels"]
    assert np.array_equal(mask.data, shipped.segment(em_8nm, pixel_size=0.008))
    for out in (mask, labels):  # on the input layer's grid, where it lies in the world
        assert out.data.shape == em_8nm.shape
        assert tuple(out.scale) == (8.0, 8.0) and tuple(out.translate) == (40.0, 80.0)
        assert [str(u) for u in out.units] == ["nanometer", "nanometer"]
    rescale = mask.metadata["provenance"]["rescale"]
    assert rescale["factor"] == [2.0, 2.0] and rescale["input_pixel_size_um"] == [0.008, 0.008]
    assert "area_um2" in labels.features.columns  # measured in µm, from the layer's scale


def test_the_field_states_or_overrides_the_pixel_size(
    viewer: Any, qtbot: Any, em_8nm: np.ndarray, shipped: Segmenter
) -> None:
    viewer.add_image(em_8nm, name="px", scale=(0.008, 0.008))  # napari's default unit: pixel
    widget = _widget(viewer)
    status = _run(widget, qtbot, "px")
    assert status.endswith(
        "pixel size unknown (the layer's scale, 0.008 x 0.008, is in pixel, not a length "
        "unet-edge reads): not resampled to the model's 0.004 µm; state it in µm"
    ), status
    assert np.array_equal(viewer.layers["px mask"].data, shipped.segment(em_8nm))
    status = _run(widget, qtbot, "px", "0.008")
    assert status.endswith("0.008 µm (stated): resampled x2 to the model's 0.004 µm and back")
    stated = viewer.layers["px mask [1]"]
    assert np.array_equal(stated.data, shipped.segment(em_8nm, pixel_size=0.008))
    assert stated.metadata["provenance"]["rescale"]["pixel_size_stated"] is True
    assert tuple(stated.scale) == pytest.approx((0.008, 0.008))
    # Far from the model's pixel size: refused, naming both, until the field states it.
    viewer.add_image(em_8nm, name="um", units="um")  # 1 µm per pixel: not a real calibration
    status = _run(widget, qtbot, "um")
    assert "1 µm, is 250x the model's, 0.004 µm" in status and "um mask" not in viewer.layers
    status = _run(widget, qtbot, "um", "native")
    assert status.endswith("pixel size: native, as stated: not resampled to the model's 0.004 µm")
    assert np.array_equal(viewer.layers["um mask"].data, shipped.segment(em_8nm))
    widget.pixel_edit.setText("8 nm")  # not a number of µm: refused before any work
    assert widget.run() is None and "pixel size '8 nm' is neither a number" in widget.status.text()


def test_for_a_model_without_a_pixel_size_the_field_does_nothing_and_says_so(
    viewer: Any, qtbot: Any, em_8nm: np.ndarray, tiny_onnx: Path
) -> None:
    viewer.add_image(em_8nm, name="em", scale=(8.0, 8.0), units="nm")
    widget = _widget(viewer)
    widget.model_edit.setText(str(tiny_onnx))
    status = _run(widget, qtbot, "em", "0.002")
    assert status.endswith(
        "the model records no training pixel size: not resampled; the pixel size field does "
        "nothing for it"
    ), status
    with Segmenter(tiny_onnx) as seg:
        assert np.array_equal(viewer.layers["em mask"].data, seg.segment(em_8nm))
    assert "rescale" not in viewer.layers["em mask"].metadata["provenance"]
