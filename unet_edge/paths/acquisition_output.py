"""Writing an acquisition's results as they come: one mask (and labels) file per frame.

:class:`FrameWriter` is what ``watch(core, seg, output=FOLDER, format=...)`` uses on
its worker thread. Each frame's files are named by its ``useq.MDAEvent`` index,
axes in the order :data:`AXIS_ORDER` (``p0002_t0005_mask.tif``; an event without an
index by its arrival number, ``frame00007_mask.tif``), and calibrated with the
pixel size the core reported for that frame (``core.getPixelSizeUm()``, as
pymmcore-plus puts it in the frame metadata). The mask is saved as the CLI saves
it: 0/255 for a two-class model, class indices otherwise; labels as uint16/uint32.

Formats: ``"tiff"``, an ImageJ TIFF per output (:func:`unet_edge.io.write_tiff`,
written atomically), and ``"ome-zarr"``, an OME-Zarr image (NGFF 0.5, zarr v3)
per output, written into a hidden temporary folder and renamed into place, so a
reader never sees half a store.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import processing
from ..errors import ConfigError, OutputError, OutputExistsError
from ..imagemeta import Calibration
from ..io import write as io_write

if TYPE_CHECKING:
    from ..runtime import Segmenter

#: Output formats and their file suffix.
FORMATS = {"tiff": ".tif", "ome-zarr": ".ome.zarr"}
#: Index axes first in a file name, in this order; any others follow alphabetically.
AXIS_ORDER = ("p", "t", "g", "z", "c")


def frame_stem(index: Mapping[str, int], arrival: int) -> str:
    """``p0002_t0005``: an event's index as a file stem (``frame00007`` when it has none)."""
    keys = [k for k in AXIS_ORDER if k in index] + sorted(set(index) - set(AXIS_ORDER))
    if not keys:
        return f"frame{arrival:05d}"
    return "_".join(f"{k}{int(index[k]):04d}" for k in keys)


def calibration_um(pixel_size_um: Any) -> Calibration | None:
    """The calibration of a pixel size in µm as the core reports it (0 or None: not set)."""
    try:
        size = float(pixel_size_um)
    except (TypeError, ValueError):
        return None
    return Calibration.make(size, size, "µm") if size > 0 else None


class FrameWriter:
    """Writes each frame's mask (and labels) into ``folder`` as ``fmt`` (a key of
    :data:`FORMATS`); ``overwrite`` replaces files of an earlier acquisition."""

    def __init__(
        self, folder: str | os.PathLike[str], fmt: str, seg: Segmenter, overwrite: bool = False
    ) -> None:
        if fmt not in FORMATS:
            raise ConfigError(
                f"unknown output format {fmt!r}; expected one of {', '.join(FORMATS)}",
                option="format",
            )
        self.folder, self.format, self.overwrite = Path(folder), fmt, overwrite
        self.suffix = FORMATS[fmt]
        self._classes = len(seg.info.class_names)
        self._provenance = seg.provenance()
        if fmt == "ome-zarr":
            _import_zarr3()
        if self.folder.exists() and not self.folder.is_dir():
            raise OutputError(
                f"output {self.folder} is a file; give a folder for the acquisition's masks",
                option="output",
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        if not overwrite:
            self._check_empty()
        self._names: set[str] = set()

    def _check_empty(self) -> None:
        """Refuse a folder that already holds this format's outputs (another acquisition's)."""
        old = sorted(
            p.name
            for pattern in (f"*_mask{self.suffix}", f"*_labels{self.suffix}")
            for p in self.folder.glob(pattern)
        )
        if old:
            raise OutputExistsError(
                f"{self.folder} already holds {len(old)} outputs of an acquisition (e.g. "
                f"{old[0]}); write into an empty folder or allow overwriting"
            )

    def stem(self, event: Any, arrival: int) -> str:
        """The frame's file stem; a repeated event index gets its arrival number too."""
        stem = frame_stem(dict(getattr(event, "index", None) or {}), arrival)
        if stem in self._names:
            stem = f"{stem}_frame{arrival:05d}"
        self._names.add(stem)
        return stem

    def write(
        self,
        stem: str,
        mask: np.ndarray,
        labels: np.ndarray | None,
        pixel_size_um: Any,
        provenance: Mapping[str, Any],
    ) -> tuple[Path, ...]:
        """Write ``stem``'s (H, W) uint8 mask and (H, W) uint32 labels (when given); the
        paths written. ``provenance`` (JSON-ready) is added to the Segmenter's."""
        cal = calibration_um(pixel_size_um)
        prov = {**self._provenance, **provenance}
        image = processing.mask_to_image(mask, self._classes)
        out = [self._one(f"{stem}_mask", image, cal, {**prov, "output": "mask"})]
        if labels is not None:
            out.append(self._one(f"{stem}_labels", labels, cal, {**prov, "output": "labels"}))
        return tuple(out)

    def _one(
        self, name: str, data: np.ndarray, cal: Calibration | None, prov: dict[str, Any]
    ) -> Path:
        path = self.folder / f"{name}{self.suffix}"
        if path.exists() and not self.overwrite:
            raise OutputExistsError(f"{path} exists; write into an empty folder")
        if self.format == "ome-zarr":
            return write_ome_zarr(path, data, cal, prov)
        if data.dtype == np.uint8:
            return io_write.write_tiff(path, data, prov, axes="YX", calibration=cal)
        return io_write.write_labels(path, data, prov, calibration=cal)


def _import_zarr3() -> Any:
    try:
        import zarr

        major = int(zarr.__version__.split(".")[0])
    except ModuleNotFoundError:
        major = 0
    if major < 3:
        raise ConfigError(
            "writing OME-Zarr needs zarr 3 or newer (pip install 'zarr>=3'); or write TIFF instead",
            option="format",
        )
    return zarr


def ome_attributes(name: str, cal: Calibration | None) -> dict[str, Any]:
    """The NGFF 0.5 ``ome`` attribute of a 2-D (y, x) image with one resolution level."""
    unit = {"unit": "micrometer"} if cal is not None else {}
    scale = [cal.y, cal.x] if cal is not None else [1.0, 1.0]
    return {
        "version": "0.5",
        "multiscales": [
            {
                "name": name,
                "axes": [{"name": a, "type": "space", **unit} for a in ("y", "x")],
                "datasets": [
                    {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}
                ],
            }
        ],
    }


def write_ome_zarr(
    path: Path, data: np.ndarray, cal: Calibration | None, provenance: Mapping[str, Any]
) -> Path:
    """Write (H, W) ``data`` as an OME-Zarr image at ``path`` (array ``0``, one chunk),
    with ``provenance`` as the ``unet_edge`` attribute: built in a hidden temporary
    folder beside it, then renamed into place (an existing store is replaced)."""
    zarr = _import_zarr3()
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        group = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        array = group.create_array("0", shape=data.shape, dtype=data.dtype, chunks=data.shape)
        array[...] = data
        group.attrs.update({"ome": ome_attributes(path.name, cal), "unet_edge": dict(provenance)})
        if path.exists():  # overwriting: a folder cannot be renamed over another
            shutil.rmtree(path)
        os.rename(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
    return path
