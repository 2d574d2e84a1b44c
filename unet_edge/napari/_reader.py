"""napari reader for the TIFFs ``unet-edge run`` writes, and the sample image.

A TIFF is ours when its provenance (JSON with ``"software": "unet-edge ..."``)
is found in an ImageDescription, an ImageJ ``Info`` property or an OME-XML
annotation; other TIFFs are left to other readers. The physical pixel size is
read from whatever the file carries, in this order: OME ``PhysicalSize*``,
ImageJ (resolution tags in pixels per ``unit``, ``spacing`` for Z), plain TIFF
resolution tags with their ``ResolutionUnit`` (inch, centimetre). Masks open as
a Labels layer of class indices, probabilities as one Image layer per class,
with that scale and the provenance and calibration in the layers' metadata.
Needs tifffile only (no napari import).
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from .. import io
from ._segment import LayerData

# Unit spellings found in ImageJ and OME files -> names napari (pint) understands.
_UNITS = {
    "micron": "micrometer",
    "microns": "micrometer",
    "um": "micrometer",
    "\u00b5m": "micrometer",
    "\u03bcm": "micrometer",
    "nm": "nanometer",
    "mm": "millimeter",
    "cm": "centimeter",
    "m": "meter",
    "inch": "inch",
}
# TIFF ResolutionUnit -> micrometres per unit (2 inch, 3 centimetre; 4, 5 as tifffile writes).
_RESOLUTION_UNITS = {2: 25400.0, 3: 10000.0, 4: 1000.0, 5: 1.0}


def get_reader(path: str | list[str]) -> Callable[[str], list[LayerData]] | None:
    """napari's reader hook: :func:`read` for a TIFF that unet-edge wrote, None otherwise."""
    if (
        not isinstance(path, (str, os.PathLike))
        or Path(path).suffix.lower() not in io.TIFF_SUFFIXES
    ):
        return None
    try:
        with tifffile.TiffFile(path) as tf:
            ours = bool(provenance(tf))
    except (OSError, ValueError, IndexError, KeyError, tifffile.TiffFileError):  # not ours to read
        return None
    return read if ours else None


def read(path: str | os.PathLike[str]) -> list[LayerData]:
    """A mask (Labels, class indices) or probabilities (Image per class) with scale and metadata."""
    with tifffile.TiffFile(path) as tf:
        prov, cal = provenance(tf), calibration(tf)
    data = io.read_image(path)
    classes = [str(c) for c in prov.get("classes") or []]
    name = Path(path).stem
    if np.issubdtype(data.dtype, np.floating) and len(classes) > 1:
        h, w = data.shape[-2:]
        data = data.reshape(-1, len(classes), h, w)
        data = data[0] if data.shape[0] == 1 else data  # (K, H, W) or (Z, K, H, W)
        layer = _placed(cal, data.ndim - 1, name=[f"{name} p({c})" for c in classes])
        meta = {"provenance": prov, "calibration": cal, "path": str(path)}
        return [(data, {**layer, "channel_axis": data.ndim - 3, "metadata": meta}, "image")]
    if len(classes) == 2:
        data = (data > 0).astype(np.uint8)  # saved as 0/255 so that it is visible elsewhere
    meta = {"provenance": prov, "calibration": cal, "path": str(path)}
    return [(data, {**_placed(cal, data.ndim, name=name), "metadata": meta}, "labels")]


def _placed(cal: dict[str, Any], ndim: int, **kwargs: Any) -> dict[str, Any]:
    """Layer keywords: ``scale`` (and ``units`` when known) for ``ndim`` axes (Z), Y, X."""
    sizes = (cal.get("z") or 1.0, cal["y"], cal["x"])[-ndim:] if ndim <= 3 else None
    if sizes is None:
        return kwargs
    unit = cal.get("unit")
    return {**kwargs, "scale": sizes, **({"units": (unit,) * ndim} if unit else {})}


def isbi_sample() -> list[LayerData]:
    """The ISBI 2012 EM slice shipped with the package, as an Image layer."""
    path = Path(str(resources.files("unet_edge") / "data" / "sample_isbi2012.png"))
    return [(io.read_image(path), {"name": "ISBI 2012 sample"}, "image")]


def provenance(tf: tifffile.TiffFile) -> dict[str, Any]:
    """The provenance unet-edge wrote into the file ({} if there is none)."""
    for text in _texts(tf):
        for found in _json_objects(text):
            if str(found.get("software", "")).startswith("unet-edge"):
                return found
    return {}


def _texts(tf: tifffile.TiffFile) -> Iterator[str]:
    """Every place a writer may have put text: descriptions, ImageJ properties, OME-XML values."""
    for tag in tf.pages.first.tags:
        if tag.code == 270 and isinstance(tag.value, str):
            yield tag.value
            if tag.value.lstrip().startswith("<"):
                yield from _xml_texts(tag.value)
    for value in (tf.imagej_metadata or {}).values():
        if isinstance(value, str):
            yield value


def _xml_texts(text: str) -> Iterator[str]:
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return
    for el in root.iter():
        if el.text and "{" in el.text:
            yield el.text
        yield from (v for v in el.attrib.values() if "{" in v)


def _json_objects(text: str) -> Iterator[dict[str, Any]]:
    """The JSON objects in ``text``: all of it, or embedded (a few tries, not a full scan)."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    for _ in range(32):
        if start < 0:
            return
        try:
            found, _end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            found = None
        if isinstance(found, dict):
            yield found
        start = text.find("{", start + 1)


def calibration(tf: tifffile.TiffFile) -> dict[str, Any]:
    """Pixel size per axis: ``{"x", "y", "z" (None if unknown), "unit" (None: unitless),
    "from": "ome" | "imagej" | "tiff" | None}``; 1 per pixel when the file says nothing."""
    if tf.is_ome and tf.ome_metadata:
        found = _ome_calibration(tf.ome_metadata)
        if found:
            return found
    x, y = _pixel_sizes(tf.pages.first)
    if tf.is_imagej:
        ij = tf.imagej_metadata or {}
        unit = _unit(str(ij.get("unit", "")))
        z = ij.get("spacing")
        return {"x": x, "y": y, "z": float(z) if z else None, "unit": unit, "from": "imagej"}
    res_unit = int(getattr(tf.pages.first.tags.get("ResolutionUnit"), "value", 1))
    if res_unit in _RESOLUTION_UNITS and (x, y) != (1.0, 1.0):
        um = _RESOLUTION_UNITS[res_unit]
        return {"x": x * um, "y": y * um, "z": None, "unit": "micrometer", "from": "tiff"}
    known = (x, y) != (1.0, 1.0)
    return {"x": x, "y": y, "z": None, "unit": None, "from": "tiff" if known else None}


def _pixel_sizes(page: Any) -> tuple[float, float]:
    """(x, y) pixel size from XResolution/YResolution (pixels per unit); 1 when absent."""
    sizes = []
    for name in ("XResolution", "YResolution"):
        tag = page.tags.get(name)
        num, den = tag.value if tag is not None else (1, 1)
        sizes.append(float(den) / float(num) if num else 1.0)
    return sizes[0], sizes[1]


def _unit(text: str) -> str | None:
    """A pint unit name for an ImageJ/OME unit string; None for pixels or nothing."""
    if "\\u" in text:
        text = text.encode().decode("unicode_escape")
    text = text.strip()
    if text.lower() in ("", "pixel", "pixels"):
        return None
    return _UNITS.get(text, _UNITS.get(text.lower(), text))


def _ome_calibration(xml: str) -> dict[str, Any] | None:
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    pixels = next((el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None or "PhysicalSizeX" not in pixels.attrib:
        return None
    a = pixels.attrib
    size_y = float(a.get("PhysicalSizeY", a["PhysicalSizeX"]))
    z = float(a["PhysicalSizeZ"]) if "PhysicalSizeZ" in a else None
    unit = _unit(a.get("PhysicalSizeXUnit", "\u00b5m"))
    return {"x": float(a["PhysicalSizeX"]), "y": size_y, "z": z, "unit": unit, "from": "ome"}
