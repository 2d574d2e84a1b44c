"""Writing results: PNG and TIFF (ImageJ hyperstack, OME-TIFF or plain pages), atomically.

Every write goes to a temporary file in the destination folder and is renamed
over the target (:mod:`unet_edge.io.atomic`), so a crash never leaves a
partial file. Provenance and the input's pixel size go where each format
keeps them (:mod:`unet_edge.imagemeta`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import tifffile

from .. import imagemeta
from ..errors import OutputError
from ..imagemeta import Calibration, Interval
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
    channel_names: Sequence[str] = (),
    interval: Interval | None = None,
    **kwargs: Any,
) -> Path:
    """Write an array as TIFF atomically.

    With ``axes`` (``"ZCYX"``, ``"CYX"``, ``"ZYX"``, ``"YX"``; uint8, uint16 or
    float32 data) an ImageJ hyperstack, or OME-TIFF if ``ome``, with the pixel
    size of ``calibration`` and ``provenance`` where each format keeps it
    (:func:`unet_edge.imagemeta.tiff_kwargs`), and ``channel_names`` (one per
    ``C`` of ``axes``, e.g. class names) as ImageJ slice labels or OME channel names;
    ``interval``: the time interval of a ``T`` axis when ``calibration`` has none.
    Without ``axes`` a plain TIFF (pages) with ``provenance`` as JSON in the
    ImageDescription.
    """
    if axes is not None:
        _check_hyperstack(path, data, axes)
        kwargs.update(imagemeta.tiff_kwargs(axes, calibration, provenance or {}, ome, interval))
        _name_channels(kwargs["metadata"], data.shape, axes, channel_names, ome)
    else:
        kwargs.update(description=json.dumps(dict(provenance or {})), metadata=None)
    kwargs.setdefault("photometric", "minisblack")  # a (Z, H, W) stack is pages, not RGB

    def writer(tmp: Path) -> None:
        tifffile.imwrite(tmp, data, **kwargs)

    return write_atomically(Path(path), writer)


def _name_channels(
    meta: dict[str, Any], shape: tuple[int, ...], axes: str, names: Sequence[str], ome: bool
) -> None:
    """Add ``names`` of the ``C`` axis to tifffile's ``meta``: OME ``Channel Name``, or
    ImageJ's slice labels (one per plane, channel fastest, as ImageJ orders planes).
    Nothing unless there is one name per channel."""
    count = dict(zip(axes, shape, strict=True)).get("C", 0)
    if not names or len(names) != count:
        return
    if ome:
        meta["Channel"] = {"Name": [str(n) for n in names]}
    else:
        planes = math.prod(shape[: axes.index("Y")])
        meta["Labels"] = [str(n) for n in names] * (planes // count)


#: Most objects a labels TIFF holds as uint16; above, uint32 (ImageJ opens it as 32-bit float,
#: exact for ids below 2^24).
UINT16_LABELS = 65535


def write_labels(
    path: str | os.PathLike[str],
    labels: np.ndarray,
    provenance: Mapping[str, Any] | None = None,
    *,
    calibration: Calibration | None = None,
) -> Path:
    """Write instance labels, (H, W) or (Z, H, W), as an ImageJ TIFF (axes ``YX``/``ZYX``),
    zlib-compressed, atomically, with the pixel size of ``calibration`` and ``provenance``
    as the ImageJ ``Info`` property.

    uint16 when every id fits (at most :data:`UINT16_LABELS`), else uint32: tifffile
    writes no ImageJ hyperstack of uint32, so the ImageJ description and the ``Info``
    property are written by hand; ImageJ 1.x opens the file as a 32-bit (float) image.
    """
    labels = np.asarray(labels)
    if labels.ndim not in (2, 3) or labels.dtype.kind not in "ui":
        raise OutputError(
            f"cannot write {path}: labels must be integer (H, W) or (Z, H, W), got "
            f"{labels.dtype} {labels.shape}"
        )
    axes = "ZYX" if labels.ndim == 3 else "YX"
    top = int(labels.max()) if labels.size else 0
    if top <= UINT16_LABELS:
        return write_tiff(
            path,
            labels.astype(np.uint16),
            provenance,
            axes=axes,
            calibration=calibration,
            compression="zlib",
        )
    data = labels.astype(np.uint32)
    ij = imagemeta.tiff_kwargs(axes, calibration, provenance or {}, ome=False)
    kwargs = imagej_uint32(ij, data.shape)

    def writer(tmp: Path) -> None:
        tifffile.imwrite(tmp, data, compression="zlib", **kwargs)

    return write_atomically(Path(path), writer)


def imagej_uint32(kwargs: Mapping[str, Any], shape: tuple[int, ...]) -> dict[str, Any]:
    """:func:`unet_edge.imagemeta.tiff_kwargs`' ImageJ arguments for a uint32 image: tifffile
    writes no ImageJ hyperstack of uint32, so the ImageJ description and the ``Info``
    property are written by hand (ImageJ 1.x opens the file as a 32-bit float image)."""
    ij = dict(kwargs)
    meta = dict(ij.pop("metadata"))
    del ij["imagej"]
    info = {"Info": meta.pop("Info")} if "Info" in meta else {}
    return {
        **ij,
        "description": tifffile.imagej_description(shape, **meta),
        "extratags": tifffile.imagej_metadata_tag(info, "<") if info else (),
        "metadata": None,
        "photometric": "minisblack",
        "byteorder": "<",
    }


_HYPERSTACK_DTYPES = (np.uint8, np.uint16, np.float32)  # what ImageJ hyperstacks hold


def _check_hyperstack(path: str | os.PathLike[str], data: np.ndarray, axes: str) -> None:
    """Refuse to write ``data`` as an ImageJ hyperstack with ``axes`` (one letter per
    dimension) unless it has that many dimensions and is uint8, uint16 or float32."""
    if data.ndim != len(axes) or data.dtype not in _HYPERSTACK_DTYPES:
        raise OutputError(
            f"cannot write {path}: an array of shape {data.shape} and dtype {data.dtype} as "
            f"axes {axes!r}; expected {len(axes)} dimensions of uint8, uint16 or float32"
        )
