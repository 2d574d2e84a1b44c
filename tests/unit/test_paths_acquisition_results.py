"""unet_edge.paths.acquisition_results: the Skip decision and the per-frame result."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from unet_edge.errors import InputError
from unet_edge.paths.acquisition_results import AcquiredResult, Skip


def test_skip_matches_events_having_every_given_axis() -> None:
    skip = Skip(p=3)
    assert skip.matches(SimpleNamespace(index={"p": 3, "t": 0}))
    assert not skip.matches(SimpleNamespace(index={"p": 2, "t": 0}))
    assert not skip.matches(SimpleNamespace(index={"t": 0}))  # no position: not that one
    both = Skip(p=1, t=4)
    assert both.matches(SimpleNamespace(index={"p": 1, "t": 4, "c": 0}))
    assert not both.matches(SimpleNamespace(index={"p": 1, "t": 3}))
    assert Skip(p=3) == Skip(p=3) and repr(Skip(p=3)) == "Skip(index={'p': 3})"
    assert len({Skip(p=3, t=1), Skip(t=1, p=3), Skip(p=4)}) == 2  # usable in sets


@pytest.mark.parametrize("index", [{}, {"p": "3"}, {"p": 1.5}, {"p": True}])
def test_skip_refuses_what_is_not_axis_integers(index: dict) -> None:
    with pytest.raises(InputError, match="Skip needs one or more axis=integer pairs"):
        Skip(**index)


def test_result_without_files_by_default() -> None:
    r = AcquiredResult(0, None, np.zeros((2, 2), np.uint8), None, 0.1, {})
    assert r.files == () and r.ok and r.error is None
