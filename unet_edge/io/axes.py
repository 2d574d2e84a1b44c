"""What a file's axes are, and how they map to the model's frames and to the outputs' axes.

The axes come from the file, never from its shape: tifffile's series axes,
which it reads from OME-XML (``DimensionOrder`` and the sizes) and ImageJ
metadata (``channels=``, ``slices=``, ``frames=``). One letter per axis:

- ``Y``, ``X``: the plane the model sees;
- ``S``: colour samples of a pixel (RGB, RGBA), ``C``: channels (ImageJ
  composites, OME channels). Either is the model's channels when their number is
  the model's; for a 1-channel model one of them is picked (``channel``), and
  RGB whose channels are equal (grey stored as RGB) is taken as grey;
- ``T`` (time) and ``Z`` (depth) stay in the outputs, in ImageJ's order ``TZ``:
  a time series gives a ``TYX`` mask, a T x Z hyperstack ``TZYX``;
- one other axis (``I``: plain pages, ``Q``: unknown) is a stack of planes, as
  it always was, and is written as ``Z`` (ImageJ knows no other letter).

:func:`layout` decides from the header alone (before any pixel is read) and
refuses what cannot be segmented right, by name; :func:`arrange` then turns the
pixels into the model's frames, and :meth:`Arranged.restack` gives every
per-frame result its stack axes back.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from numbers import Integral
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError

if TYPE_CHECKING:
    from .headers import ImageHeader

__all__ = [
    "JPEG_GREY_TOLERANCE",
    "Arranged",
    "Layout",
    "arrange",
    "arrange_array",
    "channel_names",
    "check_windowed",
    "layout",
    "outputs_for",
]

#: How far (grey levels) the channels of a JPEG's pixel may differ and the image still be
#: grey stored as RGB. OpenCV and Pillow encode a grey RGB image with neutral chroma and
#: decode it with equal channels (measured: 0 levels apart, qualities 30-95, 4:4:4 and
#: 4:2:0); other encoders' colour conversion and rounding may move them a level or two.
#: An image tinted by 6 levels is colour. Lossless files (PNG, TIFF, BMP): equal channels.
JPEG_GREY_TOLERANCE = 3

_PLANE = "YX"
_COLOUR = "CS"
_KEPT = "TZ"
_JPEG = {".jpg", ".jpeg"}
_NAME_LENGTH = 60  # channel names come from the file: shown, never trusted to be short


@dataclass(frozen=True)
class Layout:
    """How the axes of one file map to frames and outputs (made by :func:`layout`).

    ``axes``/``shape``: the file's (tifffile's letters). ``stack``: the axes the
    outputs keep before the plane, ``""``, ``"T"``, ``"Z"`` or ``"TZ"``, of sizes
    ``stack_shape``. ``source``: the file's letter of each ``stack`` axis (``"I"``
    for plain pages written as ``Z``). ``colour``: the axis holding colour or
    channels (``"C"``, ``"S"`` or ``""``); ``channel``: the one picked of it (None:
    all, or there is none); ``names``: the file's channel names (may be empty).
    ``grey_check``: RGB for a 1-channel model with no channel picked, taken as grey
    only if its channels are equal (:func:`arrange`).
    """

    path: Path
    axes: str
    shape: tuple[int, ...]
    stack: str
    stack_shape: tuple[int, ...]
    source: str
    colour: str
    channel: int | None
    names: tuple[str, ...] = ()
    grey_check: bool = False

    @property
    def frames(self) -> int:
        """How many (H, W[, C]) frames the model sees (1 for a single image)."""
        return math.prod(self.stack_shape)

    @property
    def is_stack(self) -> bool:
        """Whether the outputs keep a stack axis (T, Z or both)."""
        return bool(self.stack)

    @property
    def mask_axes(self) -> str:
        """The mask's axes: ``YX``, ``TYX``, ``ZYX``, ``TZYX``."""
        return self.stack + "YX"

    @property
    def probability_axes(self) -> str:
        """The probabilities' axes, one channel per class: ``CYX``, ``TCYX``, ``TZCYX``."""
        return self.stack + "CYX"

    @property
    def overlay_axes(self) -> str:
        """An RGB overlay's axes: ``YXS``, ``TYXS``, ``ZYXS``, ``TZYXS``."""
        return self.stack + "YXS"

    def to_dict(self) -> dict[str, Any]:
        """What provenance records: the file's axes, the outputs' and the channel picked."""
        picked = {} if self.channel is None else {"channel": self.channel}
        return {"input": self.axes, "mask": self.mask_axes, **picked}

    def describe(self) -> str:
        """The file's axes for people: ``TZCYX 2 x 3 x 2 x 64 x 64``."""
        return f"{self.axes} {' x '.join(map(str, self.shape))}"


def channel_names(tf: Any, axes: str, shape: Sequence[int]) -> tuple[str, ...]:
    """The channel names of an open ``tifffile.TiffFile`` whose series has ``axes`` and
    ``shape``: OME ``Channel/@Name`` or the first slice labels of an ImageJ hyperstack
    (ImageJ orders planes channel first); () when the file names none or not all."""
    count = dict(zip(axes, shape, strict=True)).get("C", 0)
    if count < 2:
        return ()
    found: list[Any] = []
    try:
        if tf.is_ome:
            pixels = ET.fromstring(tf.ome_metadata or "").find(".//{*}Image/{*}Pixels")
            tags = [] if pixels is None else pixels.findall("{*}Channel")
            found = [c.get("Name") for c in tags]
        elif tf.is_imagej:
            found = list((tf.imagej_metadata or {}).get("Labels") or [])[:count]
    except (ET.ParseError, TypeError, ValueError, AttributeError):
        return ()  # unreadable names: the channels are still numbered
    names = [n.strip()[:_NAME_LENGTH] for n in found if isinstance(n, str)]
    return tuple(names) if len(names) == count and all(names) else ()


def layout(header: ImageHeader | _Described, channels: int, channel: int | None = None) -> Layout:
    """How ``header``'s image maps to the frames of a ``channels``-channel model, from the
    header alone; ``channel`` picks one channel (or colour) for a 1-channel model.

    Raises :class:`~unet_edge.InputError` (``option="channel"`` where picking a
    channel fixes it) for a multi-channel image and a 1-channel model with no
    channel picked (naming the channels), a channel that is not there, a channel
    picked for a multi-channel model, channels that are not the model's number,
    and axes that cannot be kept (two unknown stack axes, C and S together).
    """
    axes, shape = header.axes, tuple(int(n) for n in header.shape)
    if channel is not None and (isinstance(channel, bool) or not isinstance(channel, Integral)):
        raise InputError(
            f"channel must be a whole number (0 for the first), got {channel!r}", option="channel"
        )
    channel = None if channel is None else int(channel)  # numpy integers too; JSON in provenance
    sizes = dict(zip(axes, shape, strict=True))
    _check_letters(header.path, axes, shape)
    stack, source = _stack_axes(header.path, axes, shape)
    colour = next((a for a in _COLOUR if sizes.get(a, 1) > 1), "")
    names = header.channel_names if colour == "C" else ()
    found = Layout(header.path, axes, shape, stack, tuple(sizes[a] for a in source), source,
                   colour, channel, names)  # fmt: skip
    _check_channels(found, sizes.get(colour, 1), channels)
    grey = channels == 1 and colour == "S" and channel is None
    return replace(found, grey_check=grey)


def _check_letters(path: Path, axes: str, shape: tuple[int, ...]) -> None:
    """Refuse axes without one Y and one X, or with both channels (C) and colour (S)."""
    if axes.count("Y") != 1 or axes.count("X") != 1 or len(set(axes)) != len(axes):
        raise InputError(
            f"{path} has axes {axes} (shape {shape}): not one image plane (one Y and "
            "one X axis); save it with ImageJ or OME axes (TZCYX)"
        )
    sizes = dict(zip(axes, shape, strict=True))
    if sizes.get("C", 1) > 1 and sizes.get("S", 1) > 1:
        raise InputError(
            f"{path} has both channels and colour samples (axes {axes}, shape {shape}); "
            "save each channel as a greyscale image, or the colour image on its own"
        )


def _stack_axes(path: Path, axes: str, shape: tuple[int, ...]) -> tuple[str, str]:
    """The stack axes the outputs keep (``""``, ``T``, ``Z``, ``TZ``) and the file's letter
    of each; refuses a second unknown stack axis."""
    others = [a for a in axes if a not in _PLANE + _COLOUR + _KEPT]
    if len(others) > 1 or (others and "Z" in axes):
        extra = ", ".join(others)
        raise InputError(
            f"{path} has axes {axes} (shape {shape}): unet-edge keeps T and Z and "
            f"reads one other stack axis as Z, but {extra} cannot all be kept without "
            "flattening them; save it as a TZCYX hyperstack (ImageJ or OME) or one file per "
            "position"
        )
    source = "".join(a for a in axes if a == "T") + "".join(a for a in axes if a == "Z")
    source += "".join(others)
    stack = source.replace(others[0], "Z") if others else source
    return stack, source


def _check_channels(found: Layout, count: int, channels: int) -> None:
    """Refuse the channels of ``found`` (``count`` of them) for a ``channels``-channel model."""
    picked, what = found.channel, _listed(found, count)
    if channels > 1 and picked is not None:
        raise InputError(
            f"channel {picked} was picked, but the model takes {channels} channels and uses "
            f"all of {found.path}'s; picking one is for 1-channel models",
            option="channel",
        )
    if channels > 1 and count != channels:
        raise InputError(
            f"{found.path} has {what} (axes {found.axes}), but the model takes {channels}; "
            f"save the {channels} channels it was trained on"
        )
    if picked is not None and not 0 <= picked < count:
        raise InputError(
            f"channel {picked} was picked, but {found.path} has {what}; pick one of 0..{count - 1}",
            option="channel",
        )
    if channels == 1 and found.colour == "C" and picked is None:
        raise InputError(
            f"{found.path} has {what} (axes {found.axes}), but the model takes 1 channel: "
            "choose the one to segment",
            option="channel",
        )


def _listed(found: Layout, count: int) -> str:
    """``1 channel`` or ``2 channels (0: DAPI, 1: GFP)``, ``3 colour channels (0: red ...)``."""
    if count == 1:
        return "1 channel"
    names = found.names or (("red", "green", "blue", "alpha") if found.colour == "S" else ())
    names = names[:count] if len(names) >= count else tuple(str(i) for i in range(count))
    shown = ", ".join(f"{i}: {n}" if n != str(i) else n for i, n in enumerate(names))
    kind = "colour channels" if found.colour == "S" else "channels"
    return f"{count} {kind} ({shown})"


@dataclass(frozen=True, eq=False)
class Arranged:
    """An image as the model's frames (:func:`arrange`).

    ``frames``: (H, W[, C]) for one image, (N, H, W[, C]) for a stack of
    ``layout.frames`` (time major, as ImageJ orders planes); ``note``: what was
    done that the user should know (grey stored as RGB taken as grey), or None.
    """

    layout: Layout
    frames: np.ndarray
    note: str | None = None

    def provenance(self) -> dict[str, Any]:
        """What the outputs' provenance records: ``axes`` (:meth:`Layout.to_dict`) and
        ``axes_note`` (when there is a note)."""
        return {"axes": self.layout.to_dict(), **({"axes_note": self.note} if self.note else {})}

    @property
    def input(self) -> np.ndarray | list[np.ndarray]:
        """What :meth:`unet_edge.Segmenter.analyze` takes: one frame, or the list of them."""
        return list(self.frames) if self.layout.is_stack else self.frames

    def restack(self, result: np.ndarray) -> np.ndarray:
        """A per-frame result, (N, ...) for a stack, with the stack axes back:
        (T, Z, ...) for a T x Z hyperstack; unchanged for a single image."""
        if not self.layout.is_stack:
            return result
        return result.reshape(*self.layout.stack_shape, *result.shape[1:])


def arrange(pixels: np.ndarray, found: Layout) -> Arranged:
    """``pixels`` (as the file holds them, ``found.axes``) as the model's frames.

    Stack axes go first (T, then Z), the plane next, channels last; a picked
    channel is taken alone; RGB for a 1-channel model (``found.grey_check``) is
    taken as grey when its channels are equal (within :data:`JPEG_GREY_TOLERANCE`
    for a JPEG), else refused (:class:`~unet_edge.InputError`) with how to convert it.
    """
    if tuple(pixels.shape) != found.shape:
        raise InputError(
            f"{found.path}: pixels of shape {pixels.shape} do not match its header "
            f"({found.describe()})"
        )
    order = [found.axes.index(a) for a in found.source + _PLANE]
    order += [found.axes.index(found.colour)] if found.colour else []
    rest = [i for i in range(len(found.axes)) if i not in order]  # axes of size 1
    x = np.transpose(pixels, order + rest).reshape([pixels.shape[i] for i in order])
    if found.colour and found.channel is not None:
        x = x[..., found.channel]
    note = None
    if found.grey_check:
        x, note = _grey(x, found)
    if found.is_stack:
        x = x.reshape(found.frames, *x.shape[len(found.stack) :])
    return Arranged(found, x, note)


def arrange_array(
    image: np.ndarray,
    axes: str,
    channels: int,
    channel: int | None = None,
    names: Sequence[str] = (),
) -> Arranged:
    """An array whose ``axes`` the caller knows (``"TCYX"``, ``"ZYXS"``; tifffile's
    letters) as the frames of a ``channels``-channel model, as a file with those axes
    would be (:func:`layout`, :func:`arrange`; ``names`` of its channels, for messages).

    ``Segmenter.predict(arranged.input)`` then gives per-frame results, and
    :meth:`Arranged.restack` puts the stack axes back::

        a = arrange_array(movie, "TCYX", seg.info.channels, channel=1)
        masks = a.restack(seg.segment(a.input))  # (T, H, W)
    """
    shape = tuple(int(n) for n in np.shape(image))
    if not isinstance(axes, str) or len(axes) != len(shape):
        raise InputError(
            f"axes {axes!r} do not name the {len(shape)} axes of an array of shape {shape}; "
            "give one letter per axis (T, Z, C, Y, X, S), e.g. 'TCYX'"
        )
    header = _Described(Path("the array"), shape, axes.upper(), tuple(map(str, names)))
    return arrange(np.asarray(image), layout(header, channels, channel))


@dataclass(frozen=True)
class _Described:
    """What :func:`layout` reads of a header, for an array described by its caller."""

    path: Path
    shape: tuple[int, ...]
    axes: str
    channel_names: tuple[str, ...] = ()


def _grey(x: np.ndarray, found: Layout) -> tuple[np.ndarray, str]:
    """RGB(A) ``x`` (..., H, W, S) as grey (..., H, W) if its colour channels are equal
    (an alpha channel is ignored; grey and alpha, S = 2, is grey), with a note; else
    :class:`~unet_edge.InputError`."""
    if x.shape[-1] == 2:
        return x[..., 0], grey_note(found.path, 2)
    rgb = x[..., :3]
    tolerance = JPEG_GREY_TOLERANCE if found.path.suffix.lower() in _JPEG else 0
    spread = _spread(rgb)
    if spread > tolerance:
        name = found.path.name
        raise InputError(
            f"{found.path} is a colour image (its red, green and blue differ by up to "
            f"{spread:g} levels), but the model takes 1 channel; convert it to grey, e.g. "
            f"python -c \"import cv2; cv2.imwrite('grey_{name}', cv2.imread('{name}', "
            'cv2.IMREAD_GRAYSCALE | cv2.IMREAD_ANYDEPTH))", or pick one colour channel (0: red, '
            "1: green, 2: blue)",
            option="channel",
        )
    grey = rgb[..., 0] if spread == 0 else _mean(rgb)
    return grey, grey_note(found.path, x.shape[-1], spread)


def grey_note(path: Path, samples: int, spread: float = 0) -> str:
    """The note on an image of ``samples`` colour samples taken as grey (``axes_note`` in
    provenance): grey and alpha (2), or RGB(A) whose channels differ by ``spread`` at most."""
    if samples == 2:
        return f"{path} is grey with an alpha channel; the alpha is ignored"
    within = "equal" if spread == 0 else f"within {spread:g} grey levels (JPEG)"
    return f"{path} is grey stored as RGB (its channels are {within}); segmented as grey"


def _spread(rgb: np.ndarray) -> float:
    """How far the colour channels (last axis) of any pixel lie from its first: 0 when all
    are equal, found without a wide copy of the image (a camera's RGB can be gigabytes)."""
    first = rgb[..., 0]
    if all(np.array_equal(first, rgb[..., c]) for c in range(1, rgb.shape[-1])):
        return 0.0
    wide = np.float64 if rgb.dtype.kind == "f" else np.int64
    return max(
        float(np.max(np.abs(rgb[..., c].astype(wide) - first.astype(wide))))
        for c in range(1, rgb.shape[-1])
    )


def _mean(rgb: np.ndarray) -> np.ndarray:
    """The mean of the colour channels (last axis), rounded for integers, in their dtype."""
    mean = rgb.mean(axis=-1, dtype=np.float64 if rgb.dtype.itemsize > 2 else np.float32)
    return (mean if rgb.dtype.kind == "f" else np.rint(mean)).astype(rgb.dtype)


#: The outputs of an image that keep its stack axes as they are; any other (labels, object
#: tables, ROIs) reads a stack as Z slices.
_STACK_OUTPUTS = {"mask", "probabilities", "overlay"}


def outputs_for(outputs: Mapping[str, Path], found: Layout) -> dict[str, Path]:
    """``outputs`` (kind -> path) for an image laid out as ``found``: a stack's overlay is
    a TIFF, one RGB page per slice (``NAME_overlay.tif``, axes :attr:`Layout.overlay_axes`),
    not one PNG.

    Raises :class:`~unet_edge.InputError` for object outputs (labels, tables, ROIs)
    of a time series: they hold Z slices only, and T is never written as Z.
    """
    objects = sorted(set(outputs) - _STACK_OUTPUTS)
    if "T" in found.stack and objects:
        raise InputError(
            f"{found.path} is a time series (axes {found.axes}); the mask and probabilities "
            f"keep its T axis, but {', '.join(objects)} hold Z slices only; ask for the mask, "
            "or save each time point as its own file"
        )
    out = dict(outputs)
    overlay = out.get("overlay")
    if overlay is not None and found.is_stack and overlay.suffix.lower() != ".tif":
        out["overlay"] = overlay.with_suffix(".tif")
    return out


def check_windowed(found: Layout) -> None:
    """Refuse, by name, what the window-by-window path cannot keep: T and Z axes, and
    channels (C) other than one picked of a ``CYX`` image; it reads one (H, W) plane,
    (H, W, S) colour for a model that takes them, the one channel picked (a colour of RGB,
    a plane of ``CYX``), or RGB for a 1-channel model as grey, checked equal window by
    window as it is read (``found.grey_check``; :class:`unet_edge.io.TiffWindows` ``grey``)."""
    if found.is_stack:
        raise InputError(
            f"{found.path} is a stack of {found.frames} planes ({found.describe()}, kept as "
            f"{found.mask_axes}); the window-by-window (large-image) path reads one YX plane, "
            "not a stack: segment it in memory, or save each plane as its own TIFF"
        )
    if found.colour == "C" and (found.channel is None or found.axes != "CYX"):
        raise InputError(
            f"{found.path} has {_listed(found, found.shape[found.axes.index('C')])} (axes "
            f"{found.axes}); the window-by-window (large-image) path reads one YX plane, grey "
            "or RGB, or one channel picked of a CYX image: segment it in memory, or save the "
            "channel to segment as its own TIFF"
        )
