"""io/row_spill.py: float32 rows kept in an anonymous temporary file, read back exactly."""

from __future__ import annotations

import numpy as np
import pytest

from unet_edge.errors import InputError
from unet_edge.io.row_spill import RowSpill


def test_rows_come_back_exactly_in_any_range():
    rng = np.random.default_rng(0)
    rows = rng.random((37, 13)).astype(np.float32)
    with RowSpill(13) as spill:
        for a, b in ((0, 5), (5, 6), (6, 37)):
            spill.append(rows[a:b])
        assert spill.rows == 37
        assert np.array_equal(spill.read(0, 37), rows)
        assert np.array_equal(spill.read(4, 9), rows[4:9])
        assert spill.read(10, 10).shape == (0, 13)
        spill.read(3, 4)[:] = 0  # a copy: the spill is unchanged
        assert np.array_equal(spill.read(3, 4), rows[3:4])


def test_bad_rows_and_ranges_are_refused():
    with RowSpill(4) as spill:
        spill.append(np.zeros((2, 4), np.float32))
        with pytest.raises(InputError, match=r"\(h, 4\)"):
            spill.append(np.zeros((2, 5), np.float32))
        with pytest.raises(InputError, match="rows 1-3"):
            spill.read(1, 3)
    spill.close()  # idempotent
