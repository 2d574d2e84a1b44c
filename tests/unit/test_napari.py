"""The napari plugin's package (unet_edge/napari/__init__.py): importing it, its reader or
its computation loads neither napari nor Qt (only the widget does)."""

from __future__ import annotations

from collections.abc import Callable


def test_the_plugin_without_its_widget_needs_no_napari(
    imports_none_of: Callable[..., None],
) -> None:
    code = "import unet_edge.napari, unet_edge.napari._reader, unet_edge.napari._segment"
    imports_none_of(code, "napari", "qtpy", "PyQt5", "PySide2", "unet_edge.napari._widget")
