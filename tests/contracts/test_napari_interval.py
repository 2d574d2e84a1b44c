"""napari uses a time series' frame interval (issue 20's leftovers): the reader puts the
interval a result file states on the T axis of its layers (``scale`` and ``units``), with a
pixel size or without one, and the widget's result layers carry the input layer's T scale.

The reader tests need neither napari nor Qt. The widget test needs the ``[napari]`` extra,
pytest-qt and a display with OpenGL: ``make test-napari`` runs it under ``xvfb-run``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from unet_edge import Segmenter, segment_file
from unet_edge.imagemeta import TIME_UNITS, Calibration, Interval
from unet_edge.napari import _reader

FRAMES = np.random.default_rng(22).integers(0, 255, (3, 40, 48), dtype=np.uint8)


@pytest.fixture(scope="module")
def tiny(tiny_onnx: Path):
    with Segmenter(tiny_onnx) as seg:
        yield seg


def _series(path: Path, finterval: float, tunit: str, um: float | None = None) -> Path:
    meta: dict[str, Any] = {"axes": "TYX", "finterval": finterval, "tunit": tunit}
    extra: dict[str, Any] = {}
    if um is not None:
        meta["unit"] = "um"
        extra["resolution"] = (1 / um, 1 / um)
    tifffile.imwrite(path, FRAMES, imagej=True, metadata=meta, **extra)
    return path


@pytest.mark.parametrize(
    ("um", "spatial", "unit"), [(None, (1.0, 1.0), "pixel"), (0.5, (0.5, 0.5), "micrometer")]
)
def test_the_reader_puts_the_interval_on_the_t_axis(
    tiny: Segmenter, tmp_path: Path, um: float | None, spatial: tuple[float, float], unit: str
) -> None:
    src = _series(tmp_path / "movie.tif", 2.5, "min", um)
    segment_file(tiny, src, tmp_path / "out", probabilities=True)
    ((mask, kwargs, kind),) = _reader.read(tmp_path / "out" / "movie_mask.tif")
    assert kind == "labels" and mask.shape == (3, 40, 48)
    assert kwargs["scale"] == (2.5, *spatial)
    assert kwargs["units"] == ("minute", unit, unit)
    ((probs, kwargs, kind),) = _reader.read(tmp_path / "out" / "movie_probabilities.tif")
    assert kind == "image" and probs.shape == (3, 2, 40, 48) and kwargs["channel_axis"] == 1
    assert kwargs["scale"] == (2.5, *spatial) and kwargs["units"][0] == "minute"


def test_the_reader_keeps_z_and_stacks_without_an_interval_as_before() -> None:
    cal = Calibration(0.5, 0.25, "µm", z=2.0)
    timed = _reader._placed(cal, 4, "TZYX", Interval(100.0, "ms"))
    assert timed == {
        "scale": (100.0, 2.0, 0.25, 0.5),  # T, Z, Y, X
        "units": ("millisecond",) + ("micrometer",) * 3,
    }
    assert _reader._placed(cal, 3, "ZYX", Interval(1.0)) == _reader._placed(cal, 3)  # no T
    assert _reader._placed(None, 3, "TYX") == {}  # no interval, no pixel size
    assert set(_reader._TIME_NAMES) == set(TIME_UNITS)  # every unit an input may state


def test_the_widget_carries_the_layers_t_scale(viewer: Any, qtbot: Any, tiny_onnx: Path) -> None:
    from unet_edge.napari._widget import SegmentWidget

    viewer.add_image(
        FRAMES, name="movie", scale=(2.5, 1.0, 1.0), units=("minute", "pixel", "pixel")
    )
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.model_edit.setText(str(tiny_onnx))
    widget.probabilities_box.setChecked(True)
    assert widget.run() is not None
    qtbot.waitUntil(widget.run_button.isEnabled, timeout=120_000)
    assert widget.status.text().startswith("done"), widget.status.text()
    mask = viewer.layers["movie mask"]
    with Segmenter(tiny_onnx) as seg:
        assert np.array_equal(mask.data, seg.segment(FRAMES))
    assert tuple(mask.scale) == (2.5, 1.0, 1.0)
    assert [str(u) for u in mask.units] == ["minute", "pixel", "pixel"]
    cell = viewer.layers["movie p(class1)"]
    assert tuple(cell.scale) == (2.5, 1.0, 1.0) and str(cell.units[0]) == "minute"


def test_the_viewer_opens_a_time_series_result_on_its_time_scale(
    viewer: Any, tiny: Segmenter, tmp_path: Path
) -> None:
    src = _series(tmp_path / "movie.tif", 100.0, "ms")  # no pixel size
    segment_file(tiny, src, tmp_path / "out")
    [labels] = viewer.open(str(tmp_path / "out" / "movie_mask.tif"), plugin="unet-edge")
    assert labels.name == "movie mask" and labels.data.shape == (3, 40, 48)
    assert tuple(labels.scale) == (100.0, 1.0, 1.0)
    assert [str(u) for u in labels.units] == ["millisecond", "pixel", "pixel"]
