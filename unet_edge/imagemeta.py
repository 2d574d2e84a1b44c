"""What an output file says about itself: physical pixel size and provenance.

Pure metadata, no file access (:mod:`unet_edge.io` opens the files):

- :class:`Calibration`, the pixel size of an input, read from whichever the
  TIFF has: OME-XML ``PhysicalSizeX/Y/Z``, ImageJ metadata (``unit``,
  ``spacing`` and the resolution tags) or plain TIFF resolution tags with an
  inch or centimetre ``ResolutionUnit`` (converted to micrometres);
- the tifffile arguments that write an array as an ImageJ hyperstack (axes,
  calibration, provenance as the ImageJ ``Info`` property) or as OME-TIFF
  (``Physical*`` sizes, provenance as a ``MapAnnotation``, and resolution tags
  in centimetres for readers that ignore OME-XML, ImageJ 1.x among them);
- provenance in a PNG ``tEXt`` chunk (OpenCV cannot write text chunks).
"""

from __future__ import annotations

import contextlib
import json
import math
import struct
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import OutputError

__all__ = [
    "PROVENANCE_KEY",
    "Calibration",
    "calibration_of",
    "png_text",
    "png_with_text",
    "provenance_of",
    "tiff_kwargs",
]

#: The ImageJ property, OME MapAnnotation key and PNG text keyword holding the provenance JSON.
PROVENANCE_KEY = "unet-edge provenance"

#: Micrometres per unit, for the units OME-XML can name (``UnitsLength``).
_MICROMETRES = {"pm": 1e-6, "Å": 1e-4, "nm": 1e-3, "µm": 1.0, "mm": 1e3, "cm": 1e4, "m": 1e6}
_MICROMETRES["in"] = 25400.0
_ALIASES = {
    "micron": "µm",
    "microns": "µm",
    "um": "µm",
    "μm": "µm",  # Greek mu, as some software writes it
    "\\u00b5m": "µm",  # ImageJ's escaped spelling
    "angstrom": "Å",
    "inch": "in",
    "meter": "m",
    "metre": "m",
}
_IMAGEJ_UNITS = {"µm": "micron", "Å": "angstrom", "in": "inch"}  # ImageJ's spellings
_UNIT_NAMES = {"pm": "picometer", "Å": "angstrom", "nm": "nanometer", "µm": "micrometer"}
_UNIT_NAMES |= {"mm": "millimeter", "cm": "centimeter", "m": "meter", "in": "inch"}
_RESUNIT_MICROMETRES = {2: 25400.0, 3: 1e4}  # TIFF ResolutionUnit: inch, centimetre


@dataclass(frozen=True)
class Calibration:
    """The physical size of one pixel: ``x`` and ``y`` (and ``z``, the slice spacing,
    when known) in ``unit`` (``"µm"``, ``"nm"``, ... as OME-XML spells them)."""

    x: float
    y: float
    unit: str = "µm"
    z: float | None = None

    @classmethod
    def make(cls, x: Any, y: Any, unit: str | None, z: Any = None) -> Calibration | None:
        """A calibration from raw values, or None when they are not positive finite sizes."""
        try:
            xf, yf = float(x), float(y)
            zf = None if z is None else float(z)
        except (TypeError, ValueError):
            return None
        if not all(math.isfinite(v) and v > 0 for v in (xf, yf)):
            return None
        if zf is not None and not (math.isfinite(zf) and zf > 0):
            zf = None
        name = _unit_name(unit)
        return None if name is None else cls(xf, yf, name, zf)

    @property
    def unit_name(self) -> str | None:
        """The unit's full name as pint (napari's layer ``units``) spells it, e.g.
        ``"micrometer"``; None for a unit that OME-XML cannot name."""
        return _UNIT_NAMES.get(self.unit)

    def in_micrometres(self) -> Calibration | None:
        """The same sizes in µm, or None for a unit that cannot be converted."""
        factor = _MICROMETRES.get(self.unit)
        if factor is None:
            return None
        z = None if self.z is None else self.z * factor
        return Calibration(self.x * factor, self.y * factor, "µm", z)


def _unit_name(unit: str | None) -> str | None:
    """The OME spelling of a length unit; None for none or "pixel" (uncalibrated)."""
    text = (unit or "").strip()
    if not text or text.lower() in ("pixel", "pixels", "none"):
        return None
    return _ALIASES.get(text.lower(), text)


def calibration_of(tf: Any) -> Calibration | None:
    """The pixel size of an open ``tifffile.TiffFile``: OME-XML first, then ImageJ
    metadata, then resolution tags in inches or centimetres; None if it has none."""
    try:
        if tf.is_ome:
            return _from_ome(tf.ome_metadata or "")
        page = tf.pages.first
        xres, yres = page.tags.valueof("XResolution"), page.tags.valueof("YResolution")
        if xres is None or yres is None:
            return None
        x, y = _per_pixel(xres), _per_pixel(yres)
        if tf.is_imagej:
            ij = tf.imagej_metadata or {}
            return Calibration.make(x, y, ij.get("unit"), ij.get("spacing"))
        factor = _RESUNIT_MICROMETRES.get(int(page.tags.valueof("ResolutionUnit", 1)))
        return None if factor is None else Calibration.make(x * factor, y * factor, "µm")
    except (ET.ParseError, ValueError, TypeError, ZeroDivisionError):
        return None  # unreadable calibration metadata: the pixels still are the pixels


def _per_pixel(resolution: Any) -> float:
    """Unit length per pixel from a TIFF resolution (pixels per unit, a rational)."""
    num, den = resolution if isinstance(resolution, tuple) else (resolution, 1)
    return float(den) / float(num)


def _from_ome(xml: str) -> Calibration | None:
    pixels = ET.fromstring(xml).find(".//{*}Image/{*}Pixels")
    if pixels is None:
        return None
    get = pixels.attrib.get
    unit = get("PhysicalSizeXUnit", "µm")
    if get("PhysicalSizeYUnit", "µm") != unit:
        return None  # x and y in different units: not a calibration we can copy as is
    z, z_unit = get("PhysicalSizeZ"), get("PhysicalSizeZUnit", "µm")
    if z is not None and z_unit != unit:
        ratio = _MICROMETRES.get(z_unit, math.nan) / _MICROMETRES.get(unit, math.nan)
        z = str(float(z) * ratio)
    return Calibration.make(get("PhysicalSizeX"), get("PhysicalSizeY"), unit, z)


def tiff_kwargs(
    axes: str,
    calibration: Calibration | None,
    provenance: Mapping[str, Any],
    ome: bool,
) -> dict[str, Any]:
    """``tifffile.imwrite`` arguments for an array with ``axes`` (``"ZCYX"``, ``"YX"``, ...).

    ImageJ hyperstack (``ome=False``): the axes, the unit and slice spacing in
    the ImageJ description, the pixel size in the resolution tags (per unit,
    ResolutionUnit none, as ImageJ writes them) and the provenance JSON as the
    ``Info`` property. OME-TIFF: the axes and ``PhysicalSize*`` in the OME-XML,
    the provenance as a MapAnnotation, and resolution tags in centimetres.
    """
    text = json.dumps(dict(provenance))
    if ome:
        return _ome_kwargs(axes, calibration, text)
    meta: dict[str, Any] = {"axes": axes, "Info": text}
    kwargs: dict[str, Any] = {"imagej": True, "metadata": meta}
    if calibration is not None:
        meta["unit"] = _IMAGEJ_UNITS.get(calibration.unit, calibration.unit)
        if calibration.z is not None and "Z" in axes:
            meta["spacing"] = calibration.z
        kwargs.update(resolution=(1 / calibration.x, 1 / calibration.y), resolutionunit=1)
    return kwargs


def _ome_kwargs(axes: str, calibration: Calibration | None, text: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"axes": axes, "MapAnnotation": {PROVENANCE_KEY: text}}
    kwargs: dict[str, Any] = {"ome": True, "photometric": "minisblack", "metadata": meta}
    if calibration is None or calibration.unit not in _MICROMETRES:
        return kwargs  # OME-XML cannot name this unit: leave the sizes out, not wrong
    sizes = {"X": calibration.x, "Y": calibration.y}
    if calibration.z is not None and "Z" in axes:
        sizes["Z"] = calibration.z
    for axis, size in sizes.items():
        meta[f"PhysicalSize{axis}"] = size
        meta[f"PhysicalSize{axis}Unit"] = calibration.unit
    um = calibration.in_micrometres()
    if um is not None:  # centimetres: what ImageJ 1.x (no Bio-Formats) understands
        kwargs.update(resolution=(1e4 / um.x, 1e4 / um.y), resolutionunit=3)
    return kwargs


def provenance_of(tf: Any) -> dict[str, Any]:
    """The provenance dictionary in an open ``tifffile.TiffFile`` ({} if it has none):
    the ImageJ ``Info`` property, the OME MapAnnotation, or a JSON ImageDescription
    (files written before outputs were hyperstacks)."""
    texts: list[Any] = []
    if tf.is_imagej:
        texts.append((tf.imagej_metadata or {}).get("Info"))
    if tf.is_ome:
        with contextlib.suppress(ET.ParseError):
            root = ET.fromstring(tf.ome_metadata or "")
            texts += [m.text for m in root.iter() if m.get("K") == PROVENANCE_KEY]
    texts.append(tf.pages.first.description)
    return first_json_dict(texts)


def first_json_dict(texts: list[Any]) -> dict[str, Any]:
    """The first of ``texts`` that is a JSON object, as a dict ({} if none is)."""
    for text in texts:
        try:
            found = json.loads(text) if isinstance(text, str) else None
        except json.JSONDecodeError:
            continue
        if isinstance(found, dict):
            return found
    return {}


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_with_text(png: bytes, keyword: str, text: str) -> bytes:
    """``png`` with a ``tEXt`` chunk (``keyword``, ``text``; both Latin-1) after its IHDR."""
    data = keyword.encode("latin-1") + b"\0" + text.encode("latin-1")
    chunk = struct.pack(">I", len(data)) + b"tEXt" + data
    chunk += struct.pack(">I", zlib.crc32(b"tEXt" + data) & 0xFFFFFFFF)
    ihdr_end = len(_PNG_SIGNATURE) + 8 + 13 + 4  # length, type, 13 data bytes, CRC
    if not png.startswith(_PNG_SIGNATURE) or png[12:16] != b"IHDR":
        raise OutputError("OpenCV returned a PNG stream that does not start with IHDR")
    return png[:ihdr_end] + chunk + png[ihdr_end:]


def png_text(png: bytes) -> dict[str, str]:
    """The ``tEXt`` chunks of a PNG stream as {keyword: text} (CRCs checked)."""
    found: dict[str, str] = {}
    pos = len(_PNG_SIGNATURE)
    while pos + 12 <= len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", png[pos + 8 + length : pos + 12 + length] or b"\0" * 4)
        if kind == b"tEXt" and zlib.crc32(kind + data) & 0xFFFFFFFF == crc:
            key, _, value = data.partition(b"\0")
            found[key.decode("latin-1")] = value.decode("latin-1")
        if kind == b"IEND":
            break
        pos += 12 + length
    return found
