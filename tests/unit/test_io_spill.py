"""BitSpill: a bool image kept as bits in an anonymous temporary file, read back by rows."""

from __future__ import annotations

import numpy as np
import pytest

from unet_edge.errors import InputError
from unet_edge.io.spill import BitSpill


@pytest.mark.parametrize("width", [1, 7, 8, 9, 1001])
def test_rows_come_back_exactly(width: int) -> None:
    rng = np.random.default_rng(width)
    image = rng.random((37, width)) < 0.5
    with BitSpill(width) as spill:
        for r0, r1 in ((0, 5), (5, 6), (6, 30), (30, 37)):
            spill.append(image[r0:r1])
        assert spill.rows == 37
        assert np.array_equal(spill.read(0, 37), image)
        assert np.array_equal(spill.read(3, 29), image[3:29])  # across appended bands
        assert spill.read(10, 10).shape == (0, width)
        # a bit per pixel on disk
        assert spill._file.seek(0, 2) == 37 * -(-width // 8)


def test_bad_bands_and_rows_are_refused() -> None:
    with BitSpill(10) as spill:
        with pytest.raises(InputError, match=r"bool \(h, 10\)"):
            spill.append(np.zeros((2, 11), bool))
        with pytest.raises(InputError, match="bool"):
            spill.append(np.zeros((2, 10), np.uint8))
        spill.append(np.ones((3, 10), bool))
        with pytest.raises(InputError, match="rows 2-4 asked of a spill holding 3 rows"):
            spill.read(2, 4)


def test_close_deletes_the_file(tmp_path) -> None:
    spill = BitSpill(16, folder=tmp_path)
    spill.append(np.ones((2, 16), bool))
    assert list(tmp_path.iterdir()) == []  # no name in the folder, even while open
    spill.close()
    spill.close()  # idempotent
    assert spill._file.closed
