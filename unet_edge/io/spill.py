"""A bool image larger than memory, kept as bits in an anonymous temporary file, row by row.

Two-pass algorithms over an image that never fits in memory (the window-by-window
labels: the first pass merges, the second writes) need the first pass's mask
again; :class:`BitSpill` keeps it at one bit per pixel on disk (a 20000 x
20000 mask is 50 MB), appended band by band and read back band by band. The
file has no name (``tempfile.TemporaryFile``), so nothing is left behind, not
even by a killed process.
"""

from __future__ import annotations

import os
import tempfile
from typing import IO

import numpy as np

from ..errors import InputError


class BitSpill:
    """Rows of a bool (H, ``width``) image, appended top to bottom, read back as any row range.

    ``folder``: where the temporary file lives (None: the system's temporary
    folder). Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, width: int, folder: str | os.PathLike[str] | None = None) -> None:
        self.width = int(width)
        self.rows = 0
        self._row_bytes = -(-self.width // 8)
        # no name, so nothing is left behind; closed by close()
        self._file: IO[bytes] = tempfile.TemporaryFile(dir=folder)  # noqa: SIM115

    def append(self, rows: np.ndarray) -> None:
        """Add ``rows`` (h, width) bool below those already there."""
        if rows.ndim != 2 or rows.shape[1] != self.width or rows.dtype != np.bool_:
            raise InputError(
                f"a spilled band is bool (h, {self.width}), got {rows.dtype} {rows.shape}"
            )
        self._file.seek(self.rows * self._row_bytes)
        self._file.write(np.packbits(rows, axis=1).tobytes())
        self.rows += rows.shape[0]

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` as a bool (stop - start, width) array."""
        if not 0 <= start <= stop <= self.rows:
            raise InputError(f"rows {start}-{stop} asked of a spill holding {self.rows} rows")
        self._file.seek(start * self._row_bytes)
        raw = self._file.read((stop - start) * self._row_bytes)
        packed = np.frombuffer(raw, np.uint8).reshape(stop - start, self._row_bytes)
        return np.unpackbits(packed, axis=1, count=self.width).astype(bool)

    def close(self) -> None:
        """Delete the file (idempotent)."""
        self._file.close()

    def __enter__(self) -> BitSpill:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
