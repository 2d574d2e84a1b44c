"""The paths wing's package (unet_edge/paths/__init__.py): it imports none of its drivers, so
the optional ones (Dask) load only when asked for."""

from __future__ import annotations

from collections.abc import Callable


def test_the_wing_loads_no_driver(imports_none_of: Callable[..., None]) -> None:
    imports_none_of("import unet_edge.paths", "unet_edge.paths.dask", "dask", "distributed")
