"""Instance labels as training data: targets, weight maps, and what a label folder holds.

An *instance label* image gives every object its own integer id (0 is
background, 1..N the objects, any order, uint8/uint16/uint32 TIFF or PNG), as
StarDist, Cellpose and the DSB 2018 masks do. The network still learns
classes; the instances define them (:data:`TARGETS`):

- ``two-class`` (background, object): the paper's target. Objects are the
  instance pixels except a 1-px line on each side where two instances touch,
  which becomes background, so touching objects are separate connected
  regions of the object class (the paper's Fig. 3: touching cells separated
  by background pixels);
- ``three-class`` (background, object, border): the **border class** is every
  pixel of an instance that lies within ``border`` px (Euclidean, default 2)
  of a pixel of *another* instance: a band along each contact, on both sides.
  The outlines of lone objects stay object, so an object's labelled region is
  its whole area except where it touches another.

Either way ``unet_edge.objects`` labels the 4-connected regions of the object
class (the metadata's ``objects``), which splits touching objects.

The paper's weight map (eq. 2) comes from the instances themselves:
``w = w_c + w0 * exp(-(d1 + d2)^2 / (2 sigma^2))`` with ``d1``, ``d2`` the
distances to the nearest and second-nearest *instance* (not connected
region, so touching objects count as two), added on background pixels (with
the two-class target these include the touching lines). ``w_c`` balances
background against objects, the border class counting as object (see
:func:`instance_weight_map` for why).

Numpy + OpenCV, no torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ..errors import DataError, InputError
from .config import LABEL_KINDS, TARGETS
from .weights import SIGMA, W0, class_balance, instance_boxes, instance_distances

__all__ = [
    "BORDER_PX",
    "CLASSES_FILE",
    "LABEL_KINDS",
    "TARGETS",
    "border_band",
    "detect_label_kind",
    "instance_target",
    "instance_weight_map",
    "read_class_names",
    "read_instances",
    "target_class_names",
]

BORDER_PX = 2.0
CLASSES_FILE = "classes.txt"


def _check_instances(instances: np.ndarray) -> np.ndarray:
    arr = np.asarray(instances)
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.integer):
        raise InputError(
            f"instance labels must be an integer (H, W) image of ids (0 background), got "
            f"{arr.dtype} {arr.shape}"
        )
    if arr.size and arr.min() < 0:
        raise InputError(f"instance ids must be >= 0, got {int(arr.min())}")
    return arr.astype(np.int32, copy=False)


def border_band(instances: np.ndarray, width: float) -> np.ndarray:
    """Pixels of an instance within ``width`` px (Euclidean) of another instance: bool (H, W).

    ``width`` 1: the pixels 4-adjacent to another instance's pixel; 2 adds those
    diagonal to one and the next ring. Empty where no two instances come that close.
    """
    inst = _check_instances(instances)
    if width <= 0:
        return np.zeros(inst.shape, bool)
    band = np.zeros(inst.shape, bool)
    # per instance: distance (inside its grown box) to the nearest pixel of a different instance
    for k, (y0, y1, x0, x1) in instance_boxes(inst, int(np.ceil(width)) + 1).items():
        win = inst[y0:y1, x0:x1]
        others = (win > 0) & (win != k)
        if not others.any():
            continue
        d = cv2.distanceTransform((~others).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        band[y0:y1, x0:x1] |= (win == k) & (d <= width)
    return band


def instance_target(
    instances: np.ndarray, target: str = "two-class", border: float = BORDER_PX
) -> np.ndarray:
    """The class map uint8 (H, W) that instance labels train: see the module docstring.

    ``two-class``: 0 background (with the 1-px touching lines), 1 object.
    ``three-class``: 0 background, 1 object, 2 border (``border`` px bands).
    """
    inst = _check_instances(instances)
    if target not in TARGETS:
        raise InputError(f"unknown target {target!r}; expected one of {', '.join(TARGETS)}")
    out = (inst > 0).astype(np.uint8)
    if target == "two-class":
        out[border_band(inst, 1.0)] = 0
    else:
        out[border_band(inst, border)] = 2
    return out


def instance_weight_map(
    instances: np.ndarray,
    target: np.ndarray,
    classes: int,
    w0: float = W0,
    sigma: float = SIGMA,
) -> np.ndarray:
    """The paper's loss weights float32 (H, W) from instance labels and their class map.

    ``w_c`` balances background against objects, a border pixel counting with its
    object (:func:`~.weights.class_balance` of ``target > 0``): balancing the thin
    border class on its own would weigh it ~10x the object class, and the network
    would then call border wherever it is unsure, cutting objects into pieces. The
    border term uses the distances to the nearest and second-nearest instance and
    is added on background pixels (``target == 0``), the gaps between objects.
    ``classes`` is the number of classes of ``target`` (checked).
    """
    inst = _check_instances(instances)
    if target.shape != inst.shape or (target.size and int(target.max()) >= classes):
        raise InputError(
            f"target {target.shape} with values up to {int(target.max()) if target.size else 0} "
            f"does not fit instances {inst.shape} and {classes} classes"
        )
    fg = (target > 0).astype(np.uint8)
    wc = class_balance(fg, 2)[fg]
    if w0 == 0:
        return wc.astype(np.float32)
    d1, d2 = instance_distances(inst, sigma=sigma)
    s = d1 + d2
    term = w0 * np.exp(-(s * s) / (2 * sigma * sigma))
    term[target != 0] = 0.0
    return (wc + term).astype(np.float32)


def target_class_names(target: str) -> tuple[str, ...]:
    """Default class names of a target: (background, cell[, border])."""
    return ("background", "cell") if target == "two-class" else ("background", "cell", "border")


def read_instances(path: str | Path) -> np.ndarray:
    """An instance label file as int32 (H, W) ids (0 background); refuses floats and colour."""
    from ..evaluate import read_array

    arr = read_array(path)
    if arr.ndim == 3:
        if not all(np.array_equal(arr[..., 0], arr[..., c]) for c in range(1, arr.shape[2])):
            raise DataError(
                f"instance labels {path} have {arr.shape[2]} different channels; expected one "
                "channel of integer ids (0 background)"
            )
        arr = arr[..., 0]
    if not np.issubdtype(arr.dtype, np.integer):
        raise DataError(
            f"instance labels {path} have dtype {arr.dtype}; expected integer ids "
            "(uint8/uint16/uint32, 0 background)"
        )
    # ids renumbered 1..N in order (find_objects lists boxes up to the largest id)
    ids = np.unique(arr)
    ids = ids if ids.size and ids[0] == 0 else np.concatenate([[0], ids])
    return np.searchsorted(ids, arr).astype(np.int32)


def detect_label_kind(label_paths: Sequence[Path], classes: int) -> tuple[str, str]:
    """``("instances" | "classes", why)`` for label files whose kind was not stated.

    Instances when any file holds a value that is no class index: at least
    ``classes`` and not the 0/255 binary encoding (e.g. ids up to 57 for 2
    classes); classes otherwise. Both readings agree when every file holds at
    most one object, so this guess is wrong only for a class map with more
    classes than were named (name them, or state the kind).
    """
    if not label_paths:
        raise DataError("no label files to look at")
    from ..evaluate import read_array

    for p in label_paths:
        arr = read_array(p)
        values = np.unique(arr)
        if classes == 2 and set(values.tolist()) <= {0, 255}:
            continue
        if values.size and int(values.max()) >= classes:
            return "instances", (
                f"{p.name} holds {values.size - 1} distinct nonzero values up to "
                f"{int(values.max())} ({arr.dtype}), more than {classes} class indices: "
                "read as instance ids"
            )
    return "classes", f"every label file holds class indices below {classes}: read as classes"


def read_class_names(data_dir: str | Path) -> tuple[str, ...] | None:
    """Class names from ``DATA_DIR/classes.txt`` (None if there is none).

    One name per line in label-value order (0 first; for instance labels, the
    target's classes: background, object[, border]); blank lines and lines
    starting with ``#`` are skipped. Fewer than two or repeated names raise
    :class:`DataError`.
    """
    path = Path(data_dir) / CLASSES_FILE
    if not path.is_file():
        return None
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    names = tuple(s.strip() for s in lines if s.strip() and not s.strip().startswith("#"))
    if len(names) < 2 or len(set(names)) != len(names):
        raise DataError(
            f"{path} names {list(names)}; expected two or more distinct class names, one per "
            "line, in label-value order (0 first)"
        )
    return names
