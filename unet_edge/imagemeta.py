"""What an output file says about itself: physical pixel size and provenance.

Pure metadata, no file access (:mod:`unet_edge.io` opens the files):

- :class:`Calibration`, the pixel size of an input, read from whichever the
  TIFF has: OME-XML ``PhysicalSizeX/Y/Z``, ImageJ metadata (``unit``,
  ``spacing`` and the resolution tags) or plain TIFF resolution tags with an
  inch or centimetre ``ResolutionUnit`` (converted to micrometres); and the
  interval between time points (OME ``TimeIncrement`` and its unit, ImageJ
  ``finterval`` and ``tunit``), written back into outputs with a T axis;
- the tifffile arguments that write an array as an ImageJ hyperstack (axes,
  calibration, provenance as the ImageJ ``Info`` property) or as OME-TIFF
  (``Physical*`` sizes, provenance as a ``MapAnnotation``, and resolution tags
  in centimetres for readers that ignore OME-XML, ImageJ 1.x among them);
- provenance in a PNG ``tEXt`` chunk (OpenCV cannot write text chunks).

What an input says about its pixel size is data, not trusted: a unit is one
of an allow-list (:data:`UNITS`: the OME length units a microscope uses, by
their OME symbols, ImageJ's spellings and the usual words), normalised to
its OME symbol; a size is a finite number of :data:`SIZE_RANGE` micrometres.
Anything else is dropped and the image is uncalibrated, with a note saying
why (:func:`calibration_and_note`). Nothing an input says is written into an
ImageJ description or OME-XML but an allow-listed unit and finite numbers,
so no newline or control character can reach them, and writing a
calibration never raises (:func:`tiff_kwargs` leaves out what it cannot
write).
"""

from __future__ import annotations

import contextlib
import dataclasses
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
    "SIZE_RANGE",
    "TIME_UNITS",
    "UNITS",
    "Calibration",
    "Interval",
    "calibration_and_note",
    "calibration_of",
    "interval_of",
    "png_text",
    "png_with_text",
    "provenance_of",
    "tiff_kwargs",
]

#: The ImageJ property, OME MapAnnotation key and PNG text keyword holding the provenance JSON.
PROVENANCE_KEY = "unet-edge provenance"

#: Micrometres per unit, for the allowed units, by their OME-XML (``UnitsLength``) symbols.
UNITS = {"pm": 1e-6, "Å": 1e-4, "nm": 1e-3, "µm": 1.0, "mm": 1e3, "cm": 1e4, "m": 1e6}
UNITS["in"] = 25400.0
#: Smallest and largest pixel size (micrometres) taken from an input: a picometre to a metre.
SIZE_RANGE = (1e-6, 1e6)

# Other spellings of the allowed units, compared in lower case: ImageJ's ("micron", its
# escaped "\u00B5m"), the Greek mu some software writes, the angstrom sign (lower case:
# "å"), the words.
_SPELLINGS = {"micron": "µm", "microns": "µm", "um": "µm", "μm": "µm", "\\u00b5m": "µm"}
_SPELLINGS |= {"angstrom": "Å", "angstroms": "Å", "ångström": "Å", "å": "Å", "inch": "in"}
_SPELLINGS |= {"inches": "in", "meter": "m", "metre": "m", "meters": "m", "metres": "m"}
_SPELLINGS |= {
    prefix + end: symbol
    for symbol, prefix in (("pm", "pico"), ("nm", "nano"), ("µm", "micro"), ("mm", "milli"))
    for end in ("meter", "metre", "meters", "metres")
}
_SPELLINGS |= {"centimeter": "cm", "centimetre": "cm", "centimeters": "cm", "centimetres": "cm"}
_UNCALIBRATED = {"", "pixel", "pixels", "px", "none"}  # no physical unit: nothing to drop
_IMAGEJ_UNITS = {"µm": "micron", "Å": "angstrom", "in": "inch"}  # ImageJ's spellings (ASCII)
_UNIT_NAMES = {"pm": "picometer", "Å": "angstrom", "nm": "nanometer", "µm": "micrometer"}
_UNIT_NAMES |= {"mm": "millimeter", "cm": "centimeter", "m": "meter", "in": "inch"}
_RESUNIT_MICROMETRES = {2: 25400.0, 3: 1e4}  # TIFF ResolutionUnit: inch, centimetre
_DROPPED = "the outputs are written without a pixel size"
#: Seconds per time unit, for the allowed units, by their OME-XML (``UnitsTime``) symbols.
TIME_UNITS = {"ns": 1e-9, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0}
TIME_UNITS["d"] = 86400.0
#: Shortest and longest time interval (seconds) taken from an input: a picosecond to 30 years.
TIME_RANGE = (1e-12, 1e9)
_TIME_SPELLINGS = {"sec": "s", "secs": "s", "second": "s", "seconds": "s", "msec": "ms"}
_TIME_SPELLINGS |= {"us": "µs", "μs": "µs", "usec": "µs", "\\u00b5s": "µs", "nsec": "ns"}
_TIME_SPELLINGS |= {"minute": "min", "minutes": "min", "mins": "min", "hour": "h", "hr": "h"}
_TIME_SPELLINGS |= {"hours": "h", "hrs": "h", "day": "d", "days": "d"}
_TIME_SPELLINGS |= {
    prefix + end: symbol
    for symbol, prefix in (("ns", "nano"), ("µs", "micro"), ("ms", "milli"))
    for end in ("second", "seconds")
}
_IMAGEJ_TIME = {"s": "sec", "µs": "us", "h": "hour", "d": "day"}  # ImageJ's tunit (ASCII)
#: Resolution tags in inches at these dots per inch (with no ImageJ or OME calibration) are
#: what desktop software writes by default, not a pixel size: the image is uncalibrated.
PLACEHOLDER_DPI = (72.0, 96.0, 150.0, 300.0)


@dataclass(frozen=True)
class Calibration:
    """The physical size of one pixel: ``x`` and ``y`` (and ``z``, the slice spacing,
    when known) in ``unit`` (``"µm"``, ``"nm"``, ... as OME-XML spells them); ``t``, the
    interval between time points when known, in ``t_unit`` (``"s"``, ``"ms"``, ``"min"``,
    ... as OME-XML spells them, :data:`TIME_UNITS`)."""

    x: float
    y: float
    unit: str = "µm"
    z: float | None = None
    t: float | None = None
    t_unit: str = "s"

    @classmethod
    def make(cls, x: Any, y: Any, unit: Any, z: Any = None) -> Calibration | None:
        """A calibration from raw values, or None when they are not one
        (:meth:`checked` says why)."""
        return cls.checked(x, y, unit, z)[0]

    @classmethod
    def checked(
        cls, x: Any, y: Any, unit: Any, z: Any = None
    ) -> tuple[Calibration | None, str | None]:
        """A calibration from raw values (as an input's metadata gives them) and a note.

        The unit must be one of :data:`UNITS` or another spelling of one (it is
        normalised to the OME symbol); ``x`` and ``y`` finite numbers within
        :data:`SIZE_RANGE` micrometres, ``z`` too or it is left out. Returns
        (None, note) when the values are dropped, (calibration, note) when only
        ``z`` is, (None, None) when there is no physical unit (pixels).
        """
        name, note = _unit(unit)
        if name is None:
            return None, note
        factor = UNITS[name]
        xf, yf = _number(x), _number(y)
        bad = [(a, v) for a, v in (("x", x), ("y", y)) if not _in_range(_number(v), factor)]
        if bad:
            axis, value = bad[0]
            why = f"the input's pixel size in {axis}, {_shown(value)} {name}, {_range()}"
            return None, f"{why}; {_DROPPED}"
        zf = None if z is None else _number(z)
        if zf is not None and not _in_range(zf, factor):
            note = f"the input's slice spacing {_shown(z)} {name} {_range()}; it is left out"
            return cls(xf, yf, name, None), note
        return cls(xf, yf, name, zf), None

    @property
    def unit_name(self) -> str | None:
        """The unit's full name as pint (napari's layer ``units``) spells it, e.g.
        ``"micrometer"``; None for a unit that OME-XML cannot name."""
        return _UNIT_NAMES.get(self.unit)

    def in_micrometres(self) -> Calibration | None:
        """The same sizes in µm, or None for a unit that cannot be converted."""
        factor = UNITS.get(self.unit)
        if factor is None:
            return None
        z = None if self.z is None else self.z * factor
        return Calibration(self.x * factor, self.y * factor, "µm", z, self.t, self.t_unit)

    def with_interval(self, t: Any, unit: Any) -> tuple[Calibration, str | None]:
        """This calibration with the time interval ``t`` in ``unit`` (raw values, as an
        input's metadata gives them) and a note when they are not taken
        (:meth:`Interval.checked`)."""
        found, note = Interval.checked(t, unit)
        if found is None:
            return self, note
        return dataclasses.replace(self, t=found.t, t_unit=found.unit), None


@dataclass(frozen=True)
class Interval:
    """The interval between time points, ``t`` in ``unit`` (as OME-XML spells it,
    :data:`TIME_UNITS`): what a time series says of its T axis, with or without a pixel
    size (:class:`Calibration` ``t`` carries it with one)."""

    t: float
    unit: str = "s"

    @classmethod
    def checked(cls, t: Any, unit: Any) -> tuple[Interval | None, str | None]:
        """An interval from raw values (as an input's metadata gives them) and a note when
        they are not taken: the unit must be one of :data:`TIME_UNITS` or another spelling
        of one (normalised to its OME symbol), ``t`` a number of :data:`TIME_RANGE` seconds."""
        text = unit.strip() if isinstance(unit, str) else ""
        name = text if text in TIME_UNITS else _TIME_SPELLINGS.get(text.lower())
        if name is None:
            allowed = ", ".join(TIME_UNITS)
            why = f"the input's time unit {_quoted(unit)} is not one of {allowed}"
            return None, f"{why}; the outputs are written without a time interval"
        seconds = _number(t) * TIME_UNITS[name]
        if not (math.isfinite(seconds) and TIME_RANGE[0] <= seconds <= TIME_RANGE[1]):
            lo, hi = TIME_RANGE
            why = f"the input's time interval {_shown(t)} {name} is not within {lo:g}..{hi:g} s"
            return None, f"{why}; the outputs are written without a time interval"
        return cls(_number(t), name), None


def _unit(unit: Any) -> tuple[str | None, str | None]:
    """The OME symbol of an allowed length unit and no note; (None, None) for no unit
    or pixels; (None, note) for anything else."""
    text = unit.strip() if isinstance(unit, str) else unit
    if text is None or (isinstance(text, str) and text.lower() in _UNCALIBRATED):
        return None, None
    if isinstance(text, str) and (text in UNITS or text.lower() in _SPELLINGS):
        return (text if text in UNITS else _SPELLINGS[text.lower()]), None
    allowed = ", ".join(UNITS)
    return None, f"the input's pixel size unit {_quoted(unit)} is not one of {allowed}; {_DROPPED}"


def _number(value: Any) -> float:
    """``value`` as a float; NaN for anything that is not a real number."""
    if isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return math.nan


def _in_range(value: float, factor: float) -> bool:
    """Whether ``value`` units of ``factor`` micrometres each lie within :data:`SIZE_RANGE`."""
    lo, hi = SIZE_RANGE
    return math.isfinite(value) and lo <= value * factor <= hi


def _range() -> str:
    lo, hi = SIZE_RANGE
    return f"is not a number within {lo:g}..{hi:g} µm"


def _shown(value: Any, limit: int = 40) -> str:
    """``value`` for a note: a number as one, anything else quoted in printable ASCII
    (escapes for the rest), at most ``limit`` long."""
    number = _number(value)
    return _quoted(value, limit) if math.isnan(number) else f"{number:g}"


def _quoted(value: Any, limit: int = 40) -> str:
    """``value`` quoted in printable ASCII (escapes for the rest), at most ``limit`` long."""
    text = ascii(value) if isinstance(value, str) else ascii(str(value))[1:-1]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def calibration_of(tf: Any) -> Calibration | None:
    """The pixel size of an open ``tifffile.TiffFile`` (:func:`calibration_and_note`),
    None if it has none or states one that is not taken."""
    return calibration_and_note(tf)[0]


def calibration_and_note(tf: Any) -> tuple[Calibration | None, str | None]:
    """The pixel size of an open ``tifffile.TiffFile`` and why part of it was dropped.

    OME-XML first, then ImageJ metadata, then resolution tags in inches or
    centimetres. The note (None when nothing was dropped) says what the file
    states that is not taken: a unit off the allow-list, a size that is not a
    finite number within :data:`SIZE_RANGE` micrometres, unreadable metadata.
    """
    try:
        if tf.is_ome:
            return _from_ome(tf.ome_metadata or "")
        page = tf.pages.first
        xres, yres = page.tags.valueof("XResolution"), page.tags.valueof("YResolution")
        ij = (tf.imagej_metadata or {}) if tf.is_imagej else {}
        interval = (ij.get("finterval"), ij.get("tunit") or "s")  # ImageJ's default: seconds
        if xres is None or yres is None:
            return _timed((None, None), *interval)
        x, y = _per_pixel(xres), _per_pixel(yres)
        if tf.is_imagej:
            return _timed(Calibration.checked(x, y, ij.get("unit"), ij.get("spacing")), *interval)
        unit = int(page.tags.valueof("ResolutionUnit", 1))
        if unit == 2 and 1 / x == 1 / y and round(1 / x, 6) in PLACEHOLDER_DPI:
            return None, _placeholder(1 / x)
        factor = _RESUNIT_MICROMETRES.get(unit)
        return (None, None) if factor is None else Calibration.checked(x * factor, y * factor, "µm")
    except (ET.ParseError, ValueError, TypeError, ZeroDivisionError, OverflowError) as e:
        # unreadable calibration metadata: the pixels still are the pixels
        why = f"the input's pixel size metadata cannot be read ({type(e).__name__})"
        return None, f"{why}; {_DROPPED}"


def _placeholder(dpi: float) -> str:
    return (
        f"the input's resolution tags say {dpi:g} dpi, a default of desktop software, not a "
        f"pixel size; the image is taken as uncalibrated and {_DROPPED}"
    )


def _per_pixel(resolution: Any) -> float:
    """Unit length per pixel from a TIFF resolution (pixels per unit, a rational)."""
    num, den = resolution if isinstance(resolution, tuple) else (resolution, 1)
    return float(den) / float(num) if float(num) else math.inf


def _from_ome(xml: str) -> tuple[Calibration | None, str | None]:
    """The calibration in OME-XML (y and z converted to x's unit) and a note."""
    pixels = ET.fromstring(xml).find(".//{*}Image/{*}Pixels")
    if pixels is None:
        return None, None
    get = pixels.attrib.get
    interval = (get("TimeIncrement"), get("TimeIncrementUnit", "s"))  # the schema's default
    if get("PhysicalSizeX") is None:
        return _timed((None, None), *interval)
    x_unit, note = _unit(get("PhysicalSizeXUnit", "µm"))  # the schema's default unit
    y_unit, y_note = _unit(get("PhysicalSizeYUnit", "µm"))
    if x_unit is None or y_unit is None:
        return None, note or y_note or f"the input's pixel size has no length unit; {_DROPPED}"
    y = _number(get("PhysicalSizeY")) * UNITS[y_unit] / UNITS[x_unit]
    z_text, z_unit = get("PhysicalSizeZ"), _unit(get("PhysicalSizeZUnit", "µm"))[0]
    z = None
    if z_text is not None:
        z = _number(z_text) * UNITS[z_unit] / UNITS[x_unit] if z_unit else math.nan
    return _timed(Calibration.checked(get("PhysicalSizeX"), y, x_unit, z), *interval)


def _timed(
    found: tuple[Calibration | None, str | None], t: Any, unit: Any
) -> tuple[Calibration | None, str | None]:
    """``found`` (a calibration and its note) with the time interval ``t`` ``unit`` an
    input states (none, or 0 as ImageJ writes for none: unchanged), and both notes.
    Without a pixel size taken there is no calibration to carry it: :func:`interval_of`
    reads it on its own (the note still says why one that is not taken is dropped)."""
    cal, note = found
    if t is None or t == "" or _number(t) == 0:
        return cal, note
    if cal is None:
        t_note = Interval.checked(t, unit)[1]
        return None, "; ".join(n for n in (note, t_note) if n) or None
    cal, t_note = cal.with_interval(t, unit)
    return cal, "; ".join(n for n in (note, t_note) if n) or None


def interval_of(tf: Any) -> Interval | None:
    """The time interval an open ``tifffile.TiffFile`` states, with or without a pixel size
    (OME ``TimeIncrement``, ImageJ ``finterval``/``tunit``); None when it states none (or
    0, ImageJ's none) or one that is not taken (:func:`calibration_and_note` says why)."""
    try:
        if tf.is_ome:
            pixels = ET.fromstring(tf.ome_metadata or "").find(".//{*}Image/{*}Pixels")
            get = {} if pixels is None else pixels.attrib
            t, unit = get.get("TimeIncrement"), get.get("TimeIncrementUnit", "s")
        elif tf.is_imagej:
            ij = tf.imagej_metadata or {}
            t, unit = ij.get("finterval"), ij.get("tunit") or "s"  # ImageJ's default: seconds
        else:
            return None
    except (ET.ParseError, ValueError, TypeError, AttributeError):
        return None  # unreadable metadata: the pixels still are the pixels
    if t is None or t == "" or _number(t) == 0:
        return None
    return Interval.checked(t, unit)[0]


def tiff_kwargs(
    axes: str,
    calibration: Calibration | None,
    provenance: Mapping[str, Any],
    ome: bool,
    interval: Interval | None = None,
) -> dict[str, Any]:
    """``tifffile.imwrite`` arguments for an array with ``axes`` (``"ZCYX"``, ``"YX"``, ...).

    ImageJ hyperstack (``ome=False``): the axes, the unit and slice spacing in
    the ImageJ description, the pixel size in the resolution tags (per unit,
    ResolutionUnit none, as ImageJ writes them) and the provenance JSON as the
    ``Info`` property. OME-TIFF: the axes and ``PhysicalSize*`` in the OME-XML,
    the provenance as a MapAnnotation, and resolution tags in centimetres.
    A ``calibration`` that an input's would not pass (:meth:`Calibration.checked`)
    is left out, so these arguments always write. With a ``T`` axis the time interval is
    written (ImageJ ``finterval``/``tunit``, OME ``TimeIncrement``): the calibration's, or
    ``interval`` when it has none (a time series with no pixel size).
    """
    text = json.dumps(dict(provenance))  # ASCII, control characters escaped
    cal = _writable(calibration)
    # an API caller may pass any values: checked as an input's are
    interval = Interval.checked(interval.t, interval.unit)[0] if interval else None
    if cal is not None and cal.t is None and interval is not None and "T" in axes:
        cal = dataclasses.replace(cal, t=interval.t, t_unit=interval.unit)
    time = interval if cal is None and "T" in axes else None  # no pixel size to carry it
    if ome:
        return _ome_kwargs(axes, cal, text, time)
    meta: dict[str, Any] = {"axes": axes, "Info": text}
    kwargs: dict[str, Any] = {"imagej": True, "metadata": meta}
    if time is not None:  # ImageJ's Image > Properties > Frame interval
        meta.update(finterval=time.t, tunit=_IMAGEJ_TIME.get(time.unit, time.unit))
    if cal is not None:
        if not all(SIZE_RANGE[0] <= v <= SIZE_RANGE[1] for v in (cal.x, cal.y)):
            # pixels per unit are 32-bit rationals: 1e9 pm per pixel is not one, 1000 µm is
            cal = cal.in_micrometres() or cal
        meta["unit"] = _IMAGEJ_UNITS.get(cal.unit, cal.unit)
        if cal.z is not None and "Z" in axes:
            meta["spacing"] = cal.z
        if cal.t is not None and "T" in axes:  # ImageJ's Image > Properties > Frame interval
            meta.update(finterval=cal.t, tunit=_IMAGEJ_TIME.get(cal.t_unit, cal.t_unit))
        kwargs.update(resolution=(1 / cal.x, 1 / cal.y), resolutionunit=1)
    return kwargs


def _writable(calibration: Any) -> Calibration | None:
    """``calibration`` checked as an input's is (an API caller may pass any values), with
    its unit's OME symbol; None when it cannot be written."""
    if not isinstance(calibration, Calibration):
        return None
    c = calibration
    cal = Calibration.checked(c.x, c.y, c.unit, c.z)[0]
    return cal.with_interval(c.t, c.t_unit)[0] if cal is not None and c.t is not None else cal


def _ome_kwargs(
    axes: str, calibration: Calibration | None, text: str, time: Interval | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"axes": axes, "MapAnnotation": {PROVENANCE_KEY: text}}
    kwargs: dict[str, Any] = {"ome": True, "photometric": "minisblack", "metadata": meta}
    if time is not None:  # an interval with no pixel size
        meta.update(TimeIncrement=time.t, TimeIncrementUnit=time.unit)
    if calibration is None:
        return kwargs
    sizes = {"X": calibration.x, "Y": calibration.y}
    if calibration.z is not None and "Z" in axes:
        sizes["Z"] = calibration.z
    for axis, size in sizes.items():
        meta[f"PhysicalSize{axis}"] = size
        meta[f"PhysicalSize{axis}Unit"] = calibration.unit
    if calibration.t is not None and "T" in axes:
        meta.update(TimeIncrement=calibration.t, TimeIncrementUnit=calibration.t_unit)
    um = calibration.in_micrometres()
    per_cm = (1e4 / um.x, 1e4 / um.y) if um is not None else (math.inf,)
    if all(v <= 4e9 for v in per_cm):  # a 32-bit rational: below 2.5 pm per pixel is not one
        # centimetres: what ImageJ 1.x (no Bio-Formats) understands
        kwargs.update(resolution=per_cm, resolutionunit=3)
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
        except (json.JSONDecodeError, RecursionError):  # RecursionError: nested 100,000 deep
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
