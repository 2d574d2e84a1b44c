"""Writing results: PNG and TIFF (ImageJ hyperstack, OME-TIFF or plain pages), atomically.

Every write goes to a temporary file in the destination folder and is renamed
over the target (:mod:`unet_edge.io.atomic`), so a crash never leaves a
partial file. Provenance and the input's pixel size go where each format
keeps them (:mod:`unet_edge.imagemeta`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import tifffile

from .. import imagemeta
from ..errors import OutputError
from ..imagemeta import Calibration
from .atomic import write_atomically


def write_png(
    path: str | os.PathLike[str],
    image: np.ndarray,
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """Write a uint8/uint16 (H, W) or RGB (H, W, 3) image as PNG, atomically;
    ``provenance`` goes into a ``tEXt`` chunk as JSON
    (:func:`unet_edge.io.read_provenance`)."""
    arr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)

    def writer(tmp: Path) -> None:
        ok, buf = cv2.imencode(".png", arr)
        if not ok:
            raise OutputError(f"OpenCV could not encode {path} as PNG")
        data = buf.tobytes()
        if provenance is not None:
            data = imagemeta.png_with_text(
                data, imagemeta.PROVENANCE_KEY, json.dumps(dict(provenance))
            )
        tmp.write_bytes(data)

    return write_atomically(Path(path), writer)


def write_tiff(
    path: str | os.PathLike[str],
    data: np.ndarray,
    provenance: Mapping[str, Any] | None = None,
    *,
    axes: str | None = None,
    calibration: Calibration | None = None,
    ome: bool = False,
    **kwargs: Any,
) -> Path:
    """Write an array as TIFF atomically.

    With ``axes`` (``"ZCYX"``, ``"CYX"``, ``"ZYX"``, ``"YX"``; uint8, uint16 or
    float32 data) an ImageJ hyperstack, or OME-TIFF if ``ome``, with the pixel
    size of ``calibration`` and ``provenance`` where each format keeps it
    (:func:`unet_edge.imagemeta.tiff_kwargs`). Without ``axes`` a plain TIFF
    (pages) with ``provenance`` as JSON in the ImageDescription.
    """
    if axes is not None:
        _check_hyperstack(path, data, axes)
        kwargs.update(imagemeta.tiff_kwargs(axes, calibration, provenance or {}, ome))
    else:
        kwargs.update(description=json.dumps(dict(provenance or {})), metadata=None)
    kwargs.setdefault("photometric", "minisblack")  # a (Z, H, W) stack is pages, not RGB

    def writer(tmp: Path) -> None:
        tifffile.imwrite(tmp, data, **kwargs)

    return write_atomically(Path(path), writer)


_HYPERSTACK_DTYPES = (np.uint8, np.uint16, np.float32)  # what ImageJ hyperstacks hold


def _check_hyperstack(path: str | os.PathLike[str], data: np.ndarray, axes: str) -> None:
    """Refuse to write ``data`` as an ImageJ hyperstack with ``axes`` (one letter per
    dimension) unless it has that many dimensions and is uint8, uint16 or float32."""
    if data.ndim != len(axes) or data.dtype not in _HYPERSTACK_DTYPES:
        raise OutputError(
            f"cannot write {path}: an array of shape {data.shape} and dtype {data.dtype} as "
            f"axes {axes!r}; expected {len(axes)} dimensions of uint8, uint16 or float32"
        )
