"""Instance labels: the model's object classes -> one integer id per connected object.

An *object* is a 4-connected component of the pixels whose class is one of
the model's object classes (the shipped EM model: ``cell``, the regions the
membranes separate). :func:`label` numbers them 1..N in raster order of each
object's first (top-left-most) pixel, 0 is background, as uint32 (H, W);
:func:`label_stack` labels a (Z, H, W) stack slice by slice (ids unique
within a slice) or, asked, in 3-D (6-connectivity).

Connected components, their areas and the distance transform are OpenCV's
(``cv2.connectedComponentsWithStats``, ``cv2.distanceTransform``,
``cv2.watershed``): OpenCV is already a runtime dependency, labels a 4096 x
4096 mask in about 0.1-0.2 s on two cores, and numbers components in raster
order of their first pixel (tested). No flood fill is written here.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ..config import look_up
from ..errors import InputError
from ..imagemeta import Calibration

__all__ = [
    "BORDER_REACH_PX",
    "MinSize",
    "Split",
    "give_border",
    "label",
    "label_classes",
    "label_stack",
    "object_mask",
    "pixel_area_um2",
]


class Split(str, enum.Enum):
    """How touching objects are split (None: they are not)."""

    WATERSHED = "watershed"  # seeded watershed on the distance transform (convex objects)
    NONE = "none"  # connected regions, also for a model whose metadata says to split


@dataclass(frozen=True)
class MinSize:
    """The smallest object kept: ``value`` pixels (``unit="px"``) or square micrometres
    (``unit="um2"``, needs the image's pixel size). ``MinSize.parse("20px")``, ``"2um2"``."""

    value: float
    unit: str = "px"

    def __post_init__(self) -> None:
        if self.unit not in ("px", "um2") or not (math.isfinite(self.value) and self.value >= 0):
            raise InputError(
                f"a minimum object size is a number >= 0 of px or um2, got {self.value!r} "
                f"{self.unit!r}; e.g. 20px or 2um2",
                option="min_size",
            )

    def __str__(self) -> str:
        """``"10px"``, ``"2um2"``: what :meth:`parse` reads back (metadata, provenance)."""
        return f"{self.value:g}{self.unit}"

    @classmethod
    def parse(cls, text: str | int | float | MinSize) -> MinSize:
        """``20``, ``"20px"``, ``"2um2"``, ``"2 µm²"`` -> a MinSize; InputError otherwise."""
        if isinstance(text, MinSize):
            return text
        if isinstance(text, (int, float)) and not isinstance(text, bool):
            return cls(float(text), "px")
        found = re.fullmatch(
            r"\s*([0-9]*\.?[0-9]+(?:e[-+]?\d+)?)\s*(px|pixels?|um2|µm2|µm²|um²|μm2|μm²)?\s*",
            str(text).lower(),
        )
        if found is None:
            raise InputError(
                f"a minimum object size is a number of pixels or square micrometres, got "
                f"{text!r}; write e.g. 20px or 2um2",
                option="min_size",
            )
        unit = found[2] or "px"
        return cls(float(found[1]), "px" if unit.startswith("p") else "um2")

    def pixels(self, calibration: Calibration | None = None) -> int:
        """The smallest area kept, in pixels: an object of fewer pixels is removed."""
        if self.unit == "px":
            return math.ceil(self.value)
        area = pixel_area_um2(calibration)
        if area is None:
            raise InputError(
                f"a minimum size of {self.value:g} um2 needs the image's pixel size, but it has "
                "none in micrometres (or a unit convertible to them); give the size in pixels "
                "(e.g. 20px) or calibrate the image",
                option="min_size",
            )
        return math.ceil(self.value / area - 1e-9)  # count x area >= value, despite rounding


def pixel_area_um2(calibration: Calibration | None) -> float | None:
    """The area of one pixel in µm², or None when the calibration is absent or not in a length
    unit convertible to micrometres."""
    um = calibration.in_micrometres() if calibration is not None else None
    return None if um is None else um.x * um.y


def object_mask(classes: np.ndarray, object_classes: Sequence[int]) -> np.ndarray:
    """Whether each pixel is an object: ``classes`` (any shape, integer class indices as
    :func:`unet_edge.processing.to_mask` gives) is one of ``object_classes``; bool, same shape."""
    classes = np.asarray(classes)
    if classes.dtype.kind not in "iub":
        raise InputError(
            f"object_mask takes integer class indices, got dtype {classes.dtype}; pass "
            "Segmenter.segment's mask (or Prediction.mask)"
        )
    wanted = sorted({int(c) for c in object_classes})
    if not wanted:
        raise InputError("no object classes given; name at least one class index")
    if len(wanted) == 1:
        return np.asarray(classes == wanted[0])
    return np.isin(classes, wanted)


def _check_mask(mask: np.ndarray, ndim: int) -> np.ndarray:
    """``mask`` as C-contiguous uint8 0/1 with ``ndim`` dimensions, or InputError."""
    mask = np.asarray(mask)
    if mask.ndim != ndim or mask.dtype != np.bool_:
        shape = "(H, W)" if ndim == 2 else "(Z, H, W)"
        raise InputError(
            f"labelling takes a bool {shape} object mask, got dtype {mask.dtype} with shape "
            f"{mask.shape}; build it with object_mask(classes, object_classes)"
        )
    return np.ascontiguousarray(mask).view(np.uint8)


def label(mask: np.ndarray, *, min_size: int = 0, split: str | Split | None = None) -> np.ndarray:
    """The objects of a bool (H, W) mask: uint32 (H, W), 0 background, 1..N the
    4-connected components in raster order of their first (top-left-most) pixel.

    ``min_size`` (pixels) removes smaller components (those left are numbered
    1..N again, in the same order). ``split="watershed"`` then splits touching
    convex objects along the watershed of the distance transform, from one seed
    per distinct maximum of the distance to the background (:mod:`.split`);
    ``split="none"`` (or None) does not split.
    """
    m = _check_mask(mask, 2)
    if not isinstance(min_size, (int, np.integer)) or min_size < 0:
        raise InputError(
            f"min_size is a number of pixels >= 0, got {min_size!r}; convert square "
            "micrometres with MinSize.parse(...).pixels(calibration)",
            option="min_size",
        )
    how = None if split is None else look_up(Split, split, "split method")
    if m.shape[0] * m.shape[1] >= 2**31:
        raise InputError(
            f"a {m.shape[0]} x {m.shape[1]} plane is too large to label in memory (2^31 "
            "pixels at most); segment it window by window"
        )
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=4, ltype=cv2.CV_32S)
    out = labels.view(np.uint32)
    if min_size > 1 and n > 1:
        keep = stats[:, cv2.CC_STAT_AREA] >= min_size
        keep[0] = False
        if not keep[1:].all():
            lut = np.zeros(n, np.uint32)
            lut[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.uint32)
            out, stats = lut[out], stats[np.flatnonzero(keep | (np.arange(n) == 0))]
    if how is Split.WATERSHED:
        from .split import split_touching

        out = split_touching(out, stats)
    return out


def label_stack(
    mask: np.ndarray,
    *,
    min_size: int = 0,
    split: str | Split | None = None,
    three_d: bool = False,
) -> np.ndarray:
    """The objects of a bool (Z, H, W) mask: uint32 (Z, H, W).

    Slice by slice (default): each slice as :func:`label`, ids 1..N_z unique
    within the slice. ``three_d``: 6-connected components of the whole stack,
    numbered in raster order (z, y, x) of their first voxel; ``min_size`` then
    counts voxels. 3-D needs SciPy (``scipy.ndimage.label``) and does not split.
    """
    if not three_d:
        _check_mask(mask, 3)
        return np.stack([label(m, min_size=min_size, split=split) for m in mask])
    m = _check_mask(mask, 3)
    if split is not None and look_up(Split, split, "split method") is not Split.NONE:
        raise InputError("split is not available for 3-D labels; label slice by slice")
    try:
        from scipy import ndimage
    except ImportError:
        raise InputError(
            "3-D labels need SciPy (pip install scipy); or label slice by slice"
        ) from None
    labels, n = ndimage.label(m, output=np.uint32)  # 6-connectivity, raster order
    if min_size > 1 and n:
        counts = np.bincount(labels.ravel(), minlength=n + 1)
        keep = counts >= min_size
        keep[0] = False
        lut = np.zeros(n + 1, np.uint32)
        lut[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.uint32)
        labels = lut[labels]
    return np.asarray(labels, np.uint32)


def label_classes(
    classes: np.ndarray,
    object_classes: Sequence[int],
    *,
    min_size: int | float | str | MinSize = 0,
    split: str | Split | None = None,
    calibration: Calibration | None = None,
    border_classes: Sequence[int] = (),
) -> np.ndarray:
    """Instance labels of a class-index mask (H, W) or stack (Z, H, W) (uint8, as
    :func:`unet_edge.processing.to_mask` gives): the objects of ``object_classes``,
    uint32 of the same shape, labelled by :func:`label` (a stack slice by slice).

    ``min_size`` is pixels (a number or ``"20px"``) or square micrometres
    (``"2um2"``, a :class:`MinSize`), converted with ``calibration``.
    ``border_classes`` (a three-class model's border bands, ``ModelInfo.border_classes``):
    their pixels are then given to the nearest object (:func:`give_border`), after the
    minimum size and the split, so an object is whole again.
    """
    mask = object_mask(classes, object_classes)
    px = MinSize.parse(min_size).pixels(calibration)
    if mask.ndim == 3:
        labels = label_stack(mask, min_size=px, split=split)
    else:
        labels = label(mask, min_size=px, split=split)
    if not border_classes:
        return labels
    border = object_mask(classes, border_classes)
    if labels.ndim == 2:
        return give_border(labels, border)
    return np.stack([give_border(lab, b) for lab, b in zip(labels, border, strict=True)])


#: How far (px) a border pixel may lie from the object it is given to. A three-class model's
#: bands are ``border`` px (2 by default) on each side of a contact, so its pixels lie 1-3 px
#: from their object's core; a band the network drew farther from any object stays background.
BORDER_REACH_PX = 5.0


def give_border(
    labels: np.ndarray, border: np.ndarray, reach: float = BORDER_REACH_PX
) -> np.ndarray:
    """``labels`` (uint32 (H, W)) with every pixel of ``border`` (bool (H, W)) that is
    background there and within ``reach`` px (Euclidean, OpenCV's 5x5 mask) of an object
    given that object's id: where two objects touch, each takes the border pixels nearer
    to it. Ids and their number are unchanged; a new array."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.dtype.kind not in "iu" or labels.shape != np.shape(border):
        raise InputError(
            f"give_border takes integer (H, W) labels and a bool border mask of the same shape, "
            f"got labels {labels.dtype} {labels.shape} and a mask of shape {np.shape(border)}; "
            "give both from the same image"
        )
    out = labels.astype(np.uint32)  # a copy
    free = (out == 0).view(np.uint8)
    if not free.any() or free.all():  # no background to give, or no object to give it to
        return out
    dist, nearest = cv2.distanceTransformWithLabels(
        free, cv2.DIST_L2, cv2.DIST_MASK_5, labelType=cv2.DIST_LABEL_PIXEL
    )
    ids = np.concatenate([[0], out[free == 0]])  # cv2 numbers the object pixels in raster order
    take = np.asarray(border, bool) & (free == 1) & (dist <= reach)
    out[take] = ids[nearest[take]]
    return out
