"""Float32 rows of an image larger than memory, kept in an anonymous temporary file.

The window-by-window labels of a model with a border class measure their objects
in a second pass, once the border is given back (:mod:`unet_edge.objects.border_blocks`);
that pass needs each pixel's object probability from the first, kept here at 4 bytes
a pixel on disk, as :class:`unet_edge.io.spill.BitSpill` keeps the mask at one bit.
"""

from __future__ import annotations

import tempfile
from typing import IO

import numpy as np

from ..errors import InputError


class RowSpill:
    """Float32 rows (h, ``width``) appended top to bottom in an anonymous temporary file and
    read back as any row range (4 bytes a pixel on disk,
    nothing in memory). Close it, or use it as a context manager."""

    def __init__(self, width: int) -> None:
        self.width, self.rows = int(width), 0
        self._file: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())

    def append(self, rows: np.ndarray) -> None:
        """Add ``rows`` (h, width) below those there."""
        if rows.ndim != 2 or rows.shape[1] != self.width:
            raise InputError(f"a spilled band is (h, {self.width}), got {rows.shape}")
        self._file.seek(self.rows * self.width * 4)
        self._file.write(np.ascontiguousarray(rows, np.float32).tobytes())
        self.rows += rows.shape[0]

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)``, float32 (stop - start, width)."""
        if not 0 <= start <= stop <= self.rows:
            raise InputError(f"rows {start}-{stop} asked of a spill holding {self.rows} rows")
        self._file.seek(start * self.width * 4)
        raw = self._file.read((stop - start) * self.width * 4)
        return np.frombuffer(raw, np.float32).reshape(stop - start, self.width).copy()

    def close(self) -> None:
        """Delete the file (idempotent)."""
        self._file.close()

    def __enter__(self) -> RowSpill:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
