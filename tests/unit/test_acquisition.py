"""unet_edge.acquisition: the public import path of the pymmcore-plus driver."""

from __future__ import annotations

import unet_edge.acquisition as public
from unet_edge.paths import acquisition, acquisition_output, acquisition_results


def test_public_names_are_the_drivers_own() -> None:
    assert public.watch is acquisition.watch
    assert public.Acquisition is acquisition.Acquisition
    assert public.AcquiredResult is acquisition_results.AcquiredResult
    assert public.Skip is acquisition_results.Skip
    assert public.FORMATS is acquisition_output.FORMATS
    assert sorted(public.__all__) == sorted(
        n for n in dir(public) if not n.startswith("_") and n not in {"annotations"}
    )


def test_importing_it_needs_no_pymmcore(imports_none_of) -> None:
    imports_none_of("import unet_edge.acquisition", "pymmcore_plus", "useq", "pymmcore", "zarr")
