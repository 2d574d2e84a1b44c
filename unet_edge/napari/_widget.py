"""The napari dock widget: segment the selected image layer into a Labels layer.

The model (the shipped one unless another .onnx is chosen), the execution
provider and the tile size are chosen in the widget; the work runs in a
napari worker thread (:func:`napari.qt.threading.create_worker`) over
:func:`._segment.segment_steps`, which yields after every batch of tiles: the
progress bar follows the tiles, Cancel stops at the next batch, and the
viewer's event loop never waits for the model. The result layers take the
input layer's scale, translation and units, so they overlay it.

The pixel size: a model that records the pixel size it was trained at (the
shipped one: 0.004 µm) segments a layer at that pixel size, resampling it
there and its probabilities back (:mod:`unet_edge.scale`), as ``unet-edge
run`` does. The layer's pixel size is its ``scale`` when its ``units`` are a
length (napari's default, ``pixel``, is not: such a layer is segmented as it
is); the *pixel size* field (µm, or ``native``) states or overrides it. The
status line says which pixel size was used and whether the layer was
resampled (:func:`._segment.pixel_size_for`). With "also add the objects" the
instance labels (:attr:`unet_edge.runtime.Prediction.labels`) come as a Labels
layer whose features are the object measurements (in µm at the stated pixel
size, else when the input layer's units are a length).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import napari
import numpy as np
from napari.qt.threading import GeneratorWorker, create_worker
from napari.utils.notifications import show_error, show_warning
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QWidget,
)

from .. import scale
from ..engines import select
from ..errors import UnetEdgeError
from ..objects.table import ObjectTable
from ..runtime import Prediction, Segmenter
from ._segment import (
    domain_warning,
    objects_of,
    pixel_size_for,
    provenance,
    result_layers,
    run_shape,
    segment_steps,
)

#: What the worker returns: the model, the prediction, the objects if they were asked for, and
#: the sentence saying which pixel size was used (:func:`._segment.pixel_size_for`).
_Result = tuple[Segmenter, Prediction, tuple[np.ndarray, ObjectTable] | None, str]


_PIXEL_TIP = (
    "The image's pixel size in micrometres (0.008: 8 nm), or 'native' to segment it as it "
    "is. Empty: the layer's scale, when its units are a length. A model that records its "
    "training pixel size segments at that size; for other models this field does nothing."
)


class SegmentWidget(QWidget):
    """Model, provider, tile, Run/Cancel and a progress bar, for the viewer's image layers."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.worker: GeneratorWorker | None = None
        self._segmenters: dict[tuple[str | None, str, int], Segmenter] = {}
        self._build()
        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)
        self._refresh_layers()

    # -- the form ----------------------------------------------------------
    def _build(self) -> None:
        self.layer_box = QComboBox()
        self.model_edit = QLineEdit()
        self.model_edit.setPlaceholderText("shipped ISBI 2012 model")
        browse = QPushButton("Browse...")
        browse.clicked.connect(self._browse)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model_edit)
        model_row.addWidget(browse)
        self.provider_box = QComboBox()
        self.provider_box.addItems(
            ["cpu", *(p.value for p in select.installed() if p.value != "cpu"), "auto"]
        )
        self.tile_box = QSpinBox()
        self.tile_box.setRange(0, 4096)
        self.tile_box.setSingleStep(16)
        self.tile_box.setSpecialValueText("auto")  # 0: the tile is chosen per image
        self.pixel_edit = QLineEdit()
        self.pixel_edit.setPlaceholderText("from the layer (µm, or native)")
        self.pixel_edit.setToolTip(_PIXEL_TIP)
        self.probabilities_box = QCheckBox("also add the probabilities")
        self.objects_box = QCheckBox("also add the objects (labels, measurements)")
        self.run_button = QPushButton("Run")
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        self.progress = QProgressBar()
        self.status = QLabel("")
        self.status.setWordWrap(True)
        form = QFormLayout(self)
        form.addRow("image", self.layer_box)
        form.addRow("pixel size", self.pixel_edit)
        form.addRow("model", model_row)
        form.addRow("provider", self.provider_box)
        form.addRow("tile", self.tile_box)
        form.addRow(self.probabilities_box)
        form.addRow(self.objects_box)
        form.addRow(buttons)
        form.addRow(self.progress)
        form.addRow(self.status)

    def _refresh_layers(self, *_: Any) -> None:
        current = self.layer_box.currentText()
        images = [layer for layer in self.viewer.layers if isinstance(layer, napari.layers.Image)]
        names = [layer.name for layer in images]
        self.layer_box.clear()
        self.layer_box.addItems(names)
        if current in names:
            self.layer_box.setCurrentText(current)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "ONNX model", "", "ONNX models (*.onnx)")
        if path:
            self.model_edit.setText(path)

    # -- running -----------------------------------------------------------
    def run(self) -> GeneratorWorker | None:
        """Segment the chosen layer in a worker thread; returns the worker (None if no layer)."""
        name = self.layer_box.currentText()
        if name not in self.viewer.layers:
            self.status.setText("add an image layer first (File > Open, or a sample)")
            return None
        try:  # a field that is not a pixel size is refused before any work
            stated = scale.parse(self.pixel_edit.text().strip() or None)
        except UnetEdgeError as error:
            self.status.setText(str(error))
            return None
        layer = self.viewer.layers[name]
        data = layer.data[0] if layer.multiscale else layer.data
        place = {
            "scale": tuple(layer.scale),
            "translate": tuple(layer.translate),
            "units": tuple(getattr(layer, "units", ()) or ()) or None,
        }
        settings = (self.model_edit.text().strip() or None, self.provider_box.currentText())
        objects = place if self.objects_box.isChecked() else None
        tile = self.tile_box.value()
        args = (data, *settings, tile, objects, place, stated)
        # Errors come to _on_error (not re-raised as a traceback): a known one is one line.
        worker = create_worker(self._work, *args, _ignore_errors=True)
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(lambda result: self._add_layers(result, name, place))
        worker.errored.connect(self._on_error)
        worker.aborted.connect(lambda: self.status.setText("cancelled"))
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setValue(0)
        self.status.setText(f"segmenting {name} ...")
        worker.start()
        return worker

    def cancel(self) -> None:
        """Stop the running segmentation after the batch of tiles in progress."""
        if self.worker is not None:
            self.worker.quit()
            self.cancel_button.setEnabled(False)
            self.status.setText("cancelling ...")

    def _work(
        self,
        data: Any,
        model: str | None,
        provider: str,
        tile: int,
        objects: dict[str, Any] | None,
        place: dict[str, Any] | None = None,
        stated: Any = None,
    ) -> Generator[tuple[int, int], None, _Result]:
        """Runs in the worker thread: open (or reuse) the model, then yield tile progress;
        with ``objects`` (the input layer's placement) label and measure the objects too.
        The pixel size ``stated`` in the field, else the layer's ``scale`` and ``units``
        (``place``): with the model's known, the image is segmented at the model's pixel size
        and the layers stay on its grid (:func:`._segment.pixel_size_for`)."""
        key = (model, provider, tile)
        if key not in self._segmenters:
            self._segmenters[key] = Segmenter(model, provider, tile or None)
        seg = self._segmenters[key]
        image = np.asarray(data)
        spatial = image.ndim - (seg.info.channels > 1)  # a channel axis is last
        model_px = seg.info.pixel_size
        rescale, said = pixel_size_for(model_px, stated, place or {}, spatial)
        pred = yield from segment_steps(seg, image, rescale)
        stated = stated if model_px else None  # the field does nothing for such a model
        found = None if objects is None else objects_of(pred, image, objects, stated)
        return seg, pred, found, said

    def _on_progress(self, step: tuple[int, int]) -> None:
        done, total = step
        self.progress.setMaximum(total)
        self.progress.setValue(done)
        self.status.setText(f"tile {done} of {total}")

    def _add_layers(self, result: _Result, name: str, place: dict[str, Any]) -> None:
        seg, pred, objects, said = result
        prov = provenance(seg, pred, name)
        classes = seg.info.class_names
        for data, kwargs, kind in result_layers(
            pred, name, place, prov, classes, self.probabilities_box.isChecked(), objects
        ):
            getattr(self.viewer, f"add_{kind}")(data, **kwargs)
        plan = seg.plan_for(run_shape(pred))  # as run: on the model's grid when resampled
        self.status.setText(
            f"done: {name} mask ({seg.provider}, {plan.n_tiles} tile(s) of "
            f"{plan.y.tile}x{plan.x.tile} per frame); {said}"
        )
        unlike = domain_warning(seg, pred, name)
        if unlike:  # a mask of an image unlike the training data is not to be trusted
            show_warning(unlike)

    def _on_error(self, error: BaseException) -> None:
        """A known error (bad input, a pixel size too far from the model's) is one line, in
        the status and a notification; anything else is a bug and keeps its traceback."""
        if not isinstance(error, UnetEdgeError):
            self.status.setText(f"{type(error).__name__}: {error}")
            raise error
        self.status.setText(str(error))
        show_error(str(error))

    def _on_finished(self) -> None:
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
