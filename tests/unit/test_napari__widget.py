"""The napari widget (unet_edge/napari/_widget.py): needs napari and Qt (extra ``[napari]``);
without them this file is skipped (tests/contracts/test_napari_viewer.py drives it in a viewer)."""

from __future__ import annotations

import pytest

pytest.importorskip("napari")
pytest.importorskip("qtpy")

from unet_edge.napari import _widget


def test_the_widget_is_a_qt_widget_napari_can_dock() -> None:
    from qtpy.QtWidgets import QWidget

    assert issubclass(_widget.SegmentWidget, QWidget)
    params = _widget.SegmentWidget.__init__.__code__.co_varnames
    assert "napari_viewer" in params  # npe2 passes the viewer by this name
