"""Segment a pymmcore-plus acquisition as it runs: the public name to import.

::

    from unet_edge.acquisition import Skip, watch

    with watch(core, seg, labels=True, output="masks") as acq:
        core.mda.run(acq.events(sequence))
        results = acq.wait()

:func:`watch`, :class:`Acquisition`, :class:`AcquiredResult` and :class:`Skip` live in
:mod:`unet_edge.paths.acquisition` (the driver, beside the other paths); this module is
the stable import path. pymmcore-plus (the ``[mmcore]`` extra) is imported only when
:func:`watch` is called.
"""

from __future__ import annotations

from .paths.acquisition import DEFAULT_MEMORY_BUDGET, Acquisition, watch
from .paths.acquisition_output import FORMATS
from .paths.acquisition_results import AcquiredResult, Skip

__all__ = ["DEFAULT_MEMORY_BUDGET", "FORMATS", "AcquiredResult", "Acquisition", "Skip", "watch"]
