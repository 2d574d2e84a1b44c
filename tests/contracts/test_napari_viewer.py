"""The napari plugin (unet_edge/napari): computation, reader, manifest, widget in a real viewer.

The computation (tile-by-tile segmentation with progress) and the reader need
neither napari nor Qt, so they run in every environment. The manifest and
widget tests need the ``[napari]`` extra and pytest-qt, and a display with
OpenGL (napari's canvas cannot start on Qt's ``offscreen`` platform): run them
with ``make test-napari`` (``xvfb-run``); elsewhere they skip, saying why.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from unet_edge import Segmenter, io
from unet_edge.imagemeta import Calibration
from unet_edge.io import read_image
from unet_edge.napari import _reader, _segment

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "unet_edge" / "data" / "sample_isbi2012.png"
PROV = {"software": "unet-edge 0.1.0", "classes": ["membrane", "cell"], "model_file": "x.onnx"}


def _drain(steps: Any) -> tuple[list[tuple[int, int]], Any]:
    seen = []
    while True:
        try:
            seen.append(next(steps))
        except StopIteration as stop:
            return seen, stop.value


def test_tile_by_tile_segmentation_equals_segment_and_counts_every_tile(tiny_onnx: Path) -> None:
    stack = np.random.default_rng(0).integers(0, 256, (2, 150, 97), np.uint8)
    with Segmenter(tiny_onnx, tile=204) as seg:
        progress, pred = _drain(_segment.segment_steps(seg, stack))
        n = seg.plan_for((150, 97)).n_tiles
        assert n > 1
        assert progress == [(i, 2 * n) for i in range(2 * n + 1)]  # one tile per batch on the CPU
        assert np.array_equal(pred.mask, seg.segment(stack))
        assert np.array_equal(pred.probabilities, seg.predict(stack))


def test_result_layers_lie_on_the_input() -> None:
    pred = _segment.Prediction(np.random.default_rng(1).random((2, 8, 9), np.float32), ({},))
    place = {"scale": (0.5, 0.25, 1.0), "translate": (3.0, 4.0, 0.0), "units": None}
    (mask, probs) = _segment.result_layers(pred, "em", place, PROV, ["a", "b"], True)
    assert mask[2] == "labels" and mask[1]["scale"] == (0.5, 0.25)  # an (H, W, C) input's Y, X
    assert mask[1]["translate"] == (3.0, 4.0) and "units" not in mask[1]
    assert probs[2] == "image" and probs[1]["channel_axis"] == 0
    assert probs[1]["name"] == ["em p(a)", "em p(b)"] and probs[1]["metadata"]["provenance"] == PROV


def test_no_napari_or_qt_on_the_runtime_path(imports_none_of: Callable[..., None]) -> None:
    imports_none_of(
        "import unet_edge, unet_edge.napari, unet_edge.napari._reader, unet_edge.napari._segment",
        "napari",
        "qtpy",
        "PyQt5",
        "vispy",
    )


@pytest.mark.parametrize("fmt", ["tiff", "ome-tiff"])
def test_reader_opens_what_unet_edge_run_writes_as_the_widget_shows_it(
    tmp_path: Path, tiny_onnx: Path, fmt: str
) -> None:
    from click.testing import CliRunner

    from unet_edge.cli import main

    image = read_image(SAMPLE)[:120, :100]
    source = tmp_path / "em.tif"  # 250 pixels per micron: 0.004 um pixels
    tifffile.imwrite(source, image, imagej=True, resolution=(250, 250), metadata={"unit": "um"})
    out = tmp_path / "out"
    args = ["run", str(source), "-o", str(out), "-m", str(tiny_onnx), "-q", "--probabilities"]
    result = CliRunner().invoke(main, [*args, "--format", fmt])
    assert result.exit_code == 0, result.output
    suffix = ".ome.tif" if fmt == "ome-tiff" else ".tif"
    paths = [out / f"em_mask{suffix}", out / f"em_probabilities{suffix}"]
    layers = []
    for path in paths:
        read = _reader.get_reader(str(path))
        assert read is _reader.read
        layers += read(str(path))
    # What the widget shows for a layer "em" segmented with the same model.
    with Segmenter(tiny_onnx) as seg:
        _, pred = _drain(_segment.segment_steps(seg, image))
        prov = _segment.provenance(seg, pred, source.name)
        widget = _segment.result_layers(pred, "em", {}, prov, seg.info.class_names, True)
    for (data, kwargs, kind), (w_data, w_kwargs, w_kind), path in zip(
        layers, widget, paths, strict=True
    ):
        assert kind == w_kind and np.array_equal(data, w_data)
        assert {k: v for k, v in kwargs.items() if k not in ("scale", "units", "metadata")} == {
            k: v for k, v in w_kwargs.items() if k != "metadata"
        }
        assert kwargs["scale"] == pytest.approx((0.004, 0.004))
        assert kwargs["units"] == ("micrometer", "micrometer")
        read_prov = dict(kwargs["metadata"]["provenance"])
        # a file records the axes it was read with; a layer segmented in the widget has none
        assert read_prov.pop("axes")["input"] == "YX"
        assert read_prov == prov and kwargs["metadata"]["path"] == str(path)
        assert kwargs["metadata"]["calibration"]["unit"] == "µm"
    assert layers[0][0].dtype == np.uint8 and set(np.unique(layers[0][0])) <= {0, 1}
    assert layers[1][1]["channel_axis"] == 0 and layers[1][0].shape == (2, 120, 100)


def _write(kind: str, path: Path, data: np.ndarray) -> None:
    if kind == "tiff":  # as older unet-edge wrote it: pages, provenance as the description
        res = {"resolution": (2.5e6, 2.5e6), "resolutionunit": "CENTIMETER"}
        io.write_tiff(path, data, PROV, **res)
    elif kind == "imagej":  # hyperstack: pixel size in microns, Z spacing, provenance as Info
        io.write_tiff(path, data, PROV, axes="ZYX", calibration=Calibration(0.004, 0.004, z=0.05))
    else:  # OME-TIFF: PhysicalSize in nm, provenance as a MapAnnotation
        cal = Calibration(4.0, 4.0, "nm", 50.0)
        io.write_tiff(path, data, PROV, axes="ZYX", calibration=cal, ome=True)


@pytest.mark.parametrize(
    ("kind", "name", "scale", "unit"),
    [
        ("tiff", "a_mask.tif", (0.004, 0.004), "micrometer"),
        ("imagej", "b_mask.tiff", (0.05, 0.004, 0.004), "micrometer"),
        ("ome", "c_mask.ome.tif", (50.0, 4.0, 4.0), "nanometer"),
    ],
)
def test_reader_scale_and_provenance_from_tiff_imagej_and_ome(
    tmp_path: Path, kind: str, name: str, scale: tuple[float, ...], unit: str
) -> None:
    mask = np.zeros((2, 6, 7), np.uint8)
    mask[:, 2:4, 1:5] = 255
    data = mask[0] if len(scale) == 2 else mask
    path = tmp_path / name
    _write(kind, path, data)
    read = _reader.get_reader(str(path))
    assert read is not None
    [(out, kwargs, layer_type)] = read(str(path))
    assert layer_type == "labels" and np.array_equal(out, data // 255)
    assert kwargs["name"] == f"{name[0]} mask"
    assert kwargs["scale"] == pytest.approx(scale)
    assert kwargs["units"] == (unit,) * len(scale)
    assert kwargs["metadata"]["provenance"] == PROV


@pytest.mark.parametrize("hyperstack", [False, True])
def test_reader_opens_probabilities_as_one_image_per_class(
    tmp_path: Path, hyperstack: bool
) -> None:
    probs = np.random.default_rng(2).random((3, 2, 5, 6), np.float32)  # (Z, K, H, W)
    path = tmp_path / "p_probabilities.tif"
    if hyperstack:
        io.write_tiff(path, probs, PROV, axes="ZCYX")
    else:  # older files: the classes of each slice as pages
        io.write_tiff(path, probs.reshape(6, 5, 6), PROV)
    assert _reader.get_reader(str(path)) is _reader.read
    [(out, kwargs, kind)] = _reader.read(str(path))
    assert kind == "image" and np.array_equal(out, probs) and kwargs["channel_axis"] == 1
    assert kwargs["name"] == ["p p(membrane)", "p p(cell)"] and "scale" not in kwargs
    assert kwargs["metadata"]["calibration"] is None


def test_reader_leaves_other_files_to_other_readers(tmp_path: Path) -> None:
    plain = tmp_path / "plain_mask.tif"
    tifffile.imwrite(plain, np.zeros((4, 4), np.uint8), description='{"software": "Fiji"}')
    broken = tmp_path / "broken_mask.tif"
    broken.write_bytes(b"II*\x00 truncated")
    ours_renamed = tmp_path / "em.tif"  # our provenance, but not a result's name
    io.write_tiff(ours_renamed, np.zeros((4, 4), np.uint8), PROV, axes="YX")
    for path in (plain, broken, ours_renamed, SAMPLE, tmp_path / "missing_mask.tif"):
        assert _reader.get_reader(str(path)) is None
    assert _reader.get_reader([str(plain), str(plain)]) is None


def test_sample_is_the_shipped_isbi_slice() -> None:
    [(data, kwargs, kind)] = _reader.isbi_sample()
    assert kind == "image" and kwargs["name"] == "ISBI 2012 sample" and data.shape == (512, 512)
    assert np.array_equal(data, read_image(SAMPLE))


# -- with napari --------------------------------------------------------------------------


def test_npe2_validates_the_installed_manifest() -> None:
    npe2 = pytest.importorskip("npe2", reason="the [napari] extra is not installed")
    from npe2.manifest.utils import import_python_name

    eps = importlib.metadata.entry_points(group="napari.manifest")
    assert "unet-edge" in {ep.name for ep in eps}, "the napari.manifest entry point is missing"
    cmd = [sys.executable, "-m", "npe2", "validate", "unet-edge"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert out.returncode == 0 and "valid" in out.stdout, out.stdout + out.stderr
    manifest = npe2.PluginManifest.from_distribution("unet-edge")
    commands = manifest.contributions.commands or []
    assert {c.id for c in commands} == {
        f"unet-edge.{n}" for n in ("segment_widget", "get_reader", "isbi_sample")
    }
    for command in commands:  # every python_name imports (what `--imports` checks, in-process)
        assert callable(import_python_name(command.python_name))


def test_viewer_opens_results_through_the_manifest_with_scale_and_units(
    viewer: Any, tmp_path: Path
) -> None:
    import npe2

    mask = np.zeros((2, 6, 7), np.uint8)
    mask[:, 2:4, 1:5] = 255
    cal = Calibration(4.0, 5.0, "nm", 50.0)
    path = io.write_tiff(tmp_path / "em_mask.ome.tif", mask, PROV, axes="ZYX", calibration=cal)
    probs = io.write_tiff(
        tmp_path / "em_probabilities.tif",
        np.random.default_rng(4).random((2, 2, 6, 7), np.float32),
        PROV,
        axes="ZCYX",
        calibration=cal,
    )
    for p in (path, probs):  # the manifest's file name patterns route results to this plugin
        readers = npe2.PluginManager.instance().iter_compatible_readers([str(p)])
        assert "unet-edge" in {r.plugin_name for r in readers}
    [labels] = viewer.open(str(path), plugin="unet-edge")
    assert labels.name == "em mask" and np.array_equal(labels.data, mask // 255)
    assert tuple(labels.scale) == pytest.approx((50.0, 5.0, 4.0))
    assert [str(u) for u in labels.units] == ["nanometer"] * 3
    layers = viewer.open(str(probs), plugin="unet-edge")
    assert [layer.name for layer in layers] == ["em p(membrane)", "em p(cell)"]
    assert tuple(layers[1].scale) == pytest.approx((50.0, 5.0, 4.0))


def _ticking() -> tuple[list[float], Any]:
    """A 20 ms timer on the GUI thread and the times it fired: proof the event loop ran."""
    from qtpy.QtCore import QTimer

    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start()
    return ticks, timer


def test_widget_segments_the_selected_layer_with_its_scale(viewer: Any, qtbot: Any) -> None:
    from unet_edge.napari._widget import SegmentWidget

    image = read_image(SAMPLE)[:300, :280]
    viewer.add_image(image, name="crop", scale=(0.004, 0.005), translate=(1.0, 2.0))
    # Opened as napari's Plugins menu does: through the manifest, the viewer injected.
    _dock, widget = viewer.window.add_plugin_dock_widget("unet-edge", "U-Net segmentation")
    assert isinstance(widget, SegmentWidget) and widget.layer_box.currentText() == "crop"
    widget.probabilities_box.setChecked(True)
    ticks, _timer = _ticking()
    start = time.monotonic()
    assert widget.run() is not None and not widget.run_button.isEnabled()
    qtbot.waitUntil(widget.run_button.isEnabled, timeout=120_000)
    took = time.monotonic() - start
    assert widget.status.text().startswith("done"), widget.status.text()
    # The 20 ms timer on the GUI thread fires only while the event loop runs. Opening the model
    # takes the GUI thread for a moment, and on a fast machine the whole run lasts ~0.3 s, so a
    # few ticks is the evidence; a run on the GUI thread would keep it from firing until it ended.
    assert len(ticks) >= 3, f"the event loop stalled: {len(ticks)} ticks in {took:.2f} s"
    assert widget.progress.value() == widget.progress.maximum() > 0
    labels = viewer.layers["crop mask"]
    with Segmenter() as seg:  # the shipped model, as the widget's default
        assert np.array_equal(labels.data, seg.segment(image))
        p_cell = seg.predict(image)[1]
    assert tuple(labels.scale) == (0.004, 0.005) and tuple(labels.translate) == (1.0, 2.0)
    assert labels.metadata["provenance"]["source"] == "crop"
    cell = viewer.layers["crop p(cell)"]
    assert np.array_equal(cell.data, p_cell) and tuple(cell.scale) == (0.004, 0.005)


def test_cancel_stops_the_worker_and_the_viewer_stays_usable(
    viewer: Any, qtbot: Any, tiny_onnx: Path
) -> None:
    from unet_edge.napari._widget import SegmentWidget

    rng = np.random.default_rng(3)
    viewer.add_image(rng.integers(0, 256, (1600, 1600), np.uint8), name="big")
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.model_edit.setText(str(tiny_onnx))
    widget.tile_box.setValue(204)  # ~10000 tiles of 20 px output: minutes if not stopped
    ticks, _timer = _ticking()
    worker = widget.run()
    assert worker is not None
    # The GUI thread ticks while the worker runs (not only once it has been cancelled).
    qtbot.waitUntil(lambda: widget.progress.value() >= 3 and len(ticks) > 5, timeout=60_000)
    started = time.monotonic()
    widget.cancel()
    qtbot.waitUntil(widget.run_button.isEnabled, timeout=20_000)
    assert time.monotonic() - started < 10
    assert (
        widget.status.text() == "cancelled" and widget.progress.value() < widget.progress.maximum()
    )
    assert "big mask" not in viewer.layers and len(ticks) > 5
    # ... and the next run works, on the same (cached) model.
    viewer.add_image(rng.integers(0, 256, (64, 64), np.uint8), name="small")
    widget.layer_box.setCurrentText("small")
    widget.run()
    qtbot.waitUntil(widget.run_button.isEnabled, timeout=60_000)
    with Segmenter(tiny_onnx, tile=204) as seg:
        assert np.array_equal(
            viewer.layers["small mask"].data, seg.segment(viewer.layers["small"].data)
        )
