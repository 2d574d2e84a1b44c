"""Segmentation metrics and reading of image/label pairs. Torch-free.

The metrics compare a predicted class mask with a ground-truth class mask of
the same shape (H, W). *Foreground* is every class other than 0; for the
ISBI 2012 EM data class 0 is membrane and class 1 cell interior, so the
foreground segments are the cells.

- ``pixel_error``: fraction of pixels whose foreground/background call differs.
- ``rand_error``: adapted Rand error (``skimage.metrics.adapted_rand_error``)
  between the connected components of the foreground of truth and prediction,
  truth background ignored. On raw components it also punishes membranes that
  are merely thicker than the truth's.
- ``rand_error_expanded``: the same after growing the predicted cells over
  the predicted background by ``expand`` px
  (``skimage.segmentation.expand_labels``), which leaves merges and splits,
  what the ISBI challenge's thinning step measured.
- ``vi`` / ``vi_split`` / ``vi_merge`` (and ``*_expanded``): variation of
  information ``skimage.metrics.variation_of_information`` on the same
  components; split = H(pred | truth), merge = H(truth | pred).
- ``iou`` and ``dice`` of the foreground.

Masks come from the arg-max over classes, i.e. a 0.5 threshold on the
foreground probability for two classes. scikit-image is imported inside the
functions so that importing this module stays light. Finding the pairs in a
data folder is :mod:`unet_edge.datasets`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .datasets import check_same_size, find_pairs
from .errors import DataError, ImageReadError, InputError

if TYPE_CHECKING:
    from collections.abc import Callable

EXPAND_PX = 10


# --------------------------------------------------------------------------- files


def read_array(path: str | Path) -> np.ndarray:
    """Read one PNG or TIFF image with its dtype unchanged (via :func:`unet_edge.io.read_image`).

    Returns (H, W) for grayscale or (H, W, C) for colour. A multi-page TIFF
    stack is refused: training and evaluation pair one image with one label.
    Raises :class:`ImageReadError` naming the file.
    """
    from .io import is_stack, read_image

    path = Path(path)
    arr = read_image(path)
    if is_stack(path):  # only multi-page TIFFs are
        raise ImageReadError(
            f"{path} is a stack of {arr.shape[0]} frames; expected one 2-D image per file "
            "(split the stack into one file per slice)"
        )
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise ImageReadError(
            f"{path} has shape {arr.shape}; expected one 2-D image (H, W) or (H, W, C)"
        )
    return arr


def read_label(path: str | Path, classes: int = 2) -> np.ndarray:
    """Read a label image as a uint8 class map (H, W) with values in 0..classes-1.

    Accepted encodings: binary 0/255 (mapped to 0/1, needs ``classes == 2``)
    and integer class maps with values below ``classes``. A multi-channel file
    is accepted only when all its channels are equal. Anything else raises
    :class:`DataError` naming the file and the values found.
    """
    path = Path(path)
    arr = read_array(path)
    if arr.ndim == 3:
        if not all(np.array_equal(arr[..., 0], arr[..., c]) for c in range(1, arr.shape[2])):
            raise DataError(
                f"label {path} has {arr.shape[2]} different channels; expected a single-channel "
                "class map (0/255 or class indices)"
            )
        arr = arr[..., 0]
    if not np.issubdtype(arr.dtype, np.integer):
        raise DataError(
            f"label {path} has dtype {arr.dtype}; expected integer class indices or 0/255"
        )
    values = np.unique(arr)
    if classes == 2 and set(values.tolist()) <= {0, 255}:
        return (arr == 255).astype(np.uint8)
    if values.min() < 0 or values.max() >= classes:
        shown = ", ".join(str(v) for v in values[:10]) + (" ..." if values.size > 10 else "")
        expected = "0/255 (binary) or " if classes == 2 else ""
        raise DataError(
            f"label {path} has values {{{shown}}}; expected {expected}class indices "
            f"0..{classes - 1} for {classes} classes. Fix the label file or set the number "
            "of classes"
        )
    return arr.astype(np.uint8)


# --------------------------------------------------------------------------- metrics


def foreground_components(mask: np.ndarray) -> np.ndarray:
    """Connected components (4-connected) of ``mask > 0``: int32 (H, W), background 0."""
    from skimage.measure import label

    return label(np.asarray(mask) > 0, connectivity=1).astype(np.int32)


def segmentation_metrics(
    prediction: np.ndarray, truth: np.ndarray, expand: int = EXPAND_PX
) -> dict[str, float]:
    """All metrics of one predicted class mask against its truth, both (H, W) integer.

    Lower is better for errors and VI, higher for ``iou`` and ``dice``.
    """
    from skimage.metrics import adapted_rand_error, variation_of_information
    from skimage.segmentation import expand_labels

    prediction, truth = np.asarray(prediction), np.asarray(truth)
    if prediction.shape != truth.shape or prediction.ndim != 2:
        raise InputError(
            f"prediction {prediction.shape} and truth {truth.shape} must be 2-D and the same shape"
        )
    pf, tf = prediction > 0, truth > 0
    inter = float(np.count_nonzero(pf & tf))
    union = float(np.count_nonzero(pf | tf))
    total = float(np.count_nonzero(pf) + np.count_nonzero(tf))
    pc, tc = foreground_components(prediction), foreground_components(truth)
    pe = expand_labels(pc, expand) if expand > 0 else pc
    out = {
        "pixel_error": float(np.count_nonzero(pf != tf)) / pf.size,
        "iou": inter / union if union else 1.0,
        "dice": 2 * inter / total if total else 1.0,
    }
    for suffix, p in (("", pc), ("_expanded", pe)):
        are, _, _ = adapted_rand_error(tc, p, ignore_labels=(0,))
        split, merge = variation_of_information(tc, p, ignore_labels=(0,))
        out[f"rand_error{suffix}"] = float(are)
        out[f"vi{suffix}"] = float(split + merge)
        out[f"vi_split{suffix}"] = float(split)
        out[f"vi_merge{suffix}"] = float(merge)
    return out


def mean_metrics(per_image: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Mean of each metric over images (metrics every image has)."""
    if not per_image:
        raise InputError("no per-image metrics to average")
    keys = [k for k in per_image[0] if all(k in m for m in per_image)]
    return {k: float(np.mean([m[k] for m in per_image])) for k in keys}


def _overlaps(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Contingency table int64 (P + 1, T + 1) of two instance images renumbered 0..P / 0..T."""
    p = np.unique(prediction, return_inverse=True)[1].reshape(prediction.shape)
    t = np.unique(truth, return_inverse=True)[1].reshape(truth.shape)
    # renumbering keeps 0 at 0 only if the image has background: shift when it has none
    p = p + (1 if prediction.min() > 0 else 0)
    t = t + (1 if truth.min() > 0 else 0)
    nt = int(t.max()) + 1
    counts = np.bincount((p * nt + t).ravel(), minlength=(int(p.max()) + 1) * nt)
    return counts.reshape(-1, nt)


def instance_metrics(
    prediction: np.ndarray, truth: np.ndarray, iou: float = 0.5
) -> dict[str, float]:
    """Object-level scores of predicted instance labels against true ones, both int (H, W).

    0 is background; any other value is an object id (ids need not be consecutive).
    A predicted and a true object *match* when their IoU exceeds ``iou`` (>= 0.5,
    so each object matches at most one other). Returns ``tp``, ``fp`` (unmatched
    predictions), ``fn`` (unmatched truths), ``precision``, ``recall``, ``f1``
    (``2 tp / (2 tp + fp + fn)``; 1 when both are empty), ``merges`` (predicted
    objects holding more than half of each of two or more true objects: touching
    objects not separated) and ``splits`` (true objects holding more than half of
    each of two or more predicted objects), and ``objects``/``predicted`` counts.
    """
    prediction, truth = np.asarray(prediction), np.asarray(truth)
    if prediction.shape != truth.shape or prediction.ndim != 2:
        raise InputError(
            f"prediction {prediction.shape} and truth {truth.shape} must be 2-D and the same shape"
        )
    if not 0.5 <= iou < 1.0:
        raise InputError(f"the IoU threshold must be in [0.5, 1), got {iou}")
    table = _overlaps(prediction, truth)
    inter = table[1:, 1:].astype(np.float64)
    area_p, area_t = table.sum(1)[1:], table.sum(0)[1:]
    union = area_p[:, None] + area_t[None, :] - inter
    tp = int(np.count_nonzero(inter > iou * np.maximum(union, 1)))
    n_p, n_t = inter.shape
    fp, fn = n_p - tp, n_t - tp
    merges = int(np.count_nonzero((inter > 0.5 * area_t[None, :]).sum(1) >= 2))
    splits = int(np.count_nonzero((inter > 0.5 * area_p[:, None]).sum(0) >= 2))
    return {
        "tp": float(tp),
        "fp": float(fp),
        "fn": float(fn),
        "precision": tp / n_p if n_p else 1.0,
        "recall": tp / n_t if n_t else 1.0,
        "f1": 2 * tp / (2 * tp + fp + fn) if (tp + fp + fn) else 1.0,
        "merges": float(merges),
        "splits": float(splits),
        "objects": float(n_t),
        "predicted": float(n_p),
    }


def pooled_instance_metrics(per_image: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """:func:`instance_metrics` over a set of images: counts summed, then F1 etc. of the sums."""
    if not per_image:
        raise InputError("no per-image metrics to pool")
    keys = ("tp", "fp", "fn", "merges", "splits", "objects", "predicted")
    s = {k: float(sum(m[k] for m in per_image)) for k in keys}
    tp, fp, fn = s["tp"], s["fp"], s["fn"]
    s["precision"] = tp / (tp + fp) if tp + fp else 1.0
    s["recall"] = tp / (tp + fn) if tp + fn else 1.0
    s["f1"] = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
    return s


def score_instances(
    model_path: str | Path | None,
    folder: str | Path,
    iou: float = 0.5,
    label_options: Mapping[str, Any] | None = None,
    **segmenter_options: Any,
) -> dict[str, Any]:
    """Instance scores of a model on ``folder`` (``image/`` + ``label/`` of instance ids).

    Labels each image as ``Segmenter.label`` (``run --labels``) does, with
    ``label_options`` (``min_size``, ``split``; default: the model's rule), and
    compares with :func:`instance_metrics`. Returns ``{"mean": pooled scores,
    "images": {name: scores}, "iou": iou, "model": ...}``.
    """
    from .datasets import split_folder
    from .runtime import Segmenter

    segmenter = Segmenter(model_path, **segmenter_options)
    per: dict[str, dict[str, float]] = {}
    for name, image_path, label_path in find_pairs(*split_folder(folder)):
        image, truth = read_array(image_path), read_array(label_path)
        check_same_size(image, truth, image_path, label_path)
        per[name] = instance_metrics(segmenter.label(image, **(label_options or {})), truth, iou)
    return {
        "mean": pooled_instance_metrics(list(per.values())),
        "images": per,
        "iou": iou,
        "model": str(model_path) if model_path is not None else "default",
    }


def evaluate_predictions(
    pairs: Sequence[tuple[str, Path, Path]],
    segment: Callable[[np.ndarray], np.ndarray],
    classes: int = 2,
    expand: int = EXPAND_PX,
    progress: Callable[[str, dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Segment each image with ``segment`` (image -> (H, W) class mask) and score it.

    Returns ``{"mean": {...}, "images": {name: {...}}, "threshold": ...,
    "expand_px": expand}``. Raises :class:`DataError` when an image and its
    label differ in size.
    """
    per: dict[str, dict[str, float]] = {}
    for name, image_path, label_path in pairs:
        image = read_array(image_path)
        truth = read_label(label_path, classes)
        check_same_size(image, truth, image_path, label_path)
        mask = np.asarray(segment(image))
        per[name] = segmentation_metrics(mask, truth, expand)
        if progress is not None:
            progress(name, per[name])
    return {
        "mean": mean_metrics(list(per.values())),
        "images": per,
        "threshold": "argmax over classes (0.5 for two classes)",
        "expand_px": expand,
    }


def evaluate_model(
    model_path: str | Path | None,
    images: str | Path,
    labels: str | Path,
    provider: str = "cpu",
    names: Iterable[str] | None = None,
    expand: int = EXPAND_PX,
    progress: Callable[[str, dict[str, float]], None] | None = None,
    **segmenter_options: Any,
) -> dict[str, Any]:
    """Score an ONNX model on a folder of images and a folder of labels.

    Body of ``unet-edge evaluate``: runs the same :class:`unet_edge.runtime.Segmenter`
    as ``unet-edge run``. ``model_path=None`` uses the shipped default model.
    Returns the dictionary of :func:`evaluate_predictions` plus ``"model"``.
    """
    from .runtime import Segmenter

    pairs = find_pairs(images, labels, names)
    segmenter = Segmenter(model_path, provider=provider, **segmenter_options)
    classes = segmenter.info.classes
    result = evaluate_predictions(pairs, segmenter.segment, classes, expand, progress)
    result["model"] = str(model_path) if model_path is not None else "default"
    result["tta"] = segmenter.tta
    return result
