"""The paper's pixel-wise loss weights (Ronneberger et al. 2015, eq. 2).

    w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))^2 / (2 sigma^2))

``w_c`` balances the class frequencies of the image; ``d1`` and ``d2`` are the
distances to the border of the nearest and second-nearest cell, where cells
are the connected components (4-connected) of the foreground (every class but
0). The border term is added on background pixels only: in EM labels cells
touch only through membrane (background) pixels, and those thin separating
lines are what the network must learn to keep.

Vectorised: one exact Euclidean distance transform per cell, restricted to the
cell's bounding box grown by ``reach`` pixels (beyond it the border term is
below ``w0 * exp(-2 reach^2 / sigma^2)``, negligible), keeping a running
minimum and second minimum. Numpy + OpenCV only, no torch.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import InputError

W0 = 10.0
SIGMA = 5.0


def class_balance(labels: np.ndarray, classes: int) -> np.ndarray:
    """Per-class weights (classes,) float32 ``N / (K * n_c)`` over the K classes present.

    Absent classes get weight 1. The weighted class frequencies are then equal
    and the mean weight over the image is 1.
    """
    counts = np.bincount(labels.ravel(), minlength=classes)[:classes].astype(np.float64)
    present = counts > 0
    w = np.ones(classes)
    w[present] = labels.size / (present.sum() * counts[present])
    return w.astype(np.float32)


def border_distances(
    labels: np.ndarray, reach: int | None = None, sigma: float = SIGMA
) -> tuple[np.ndarray, np.ndarray]:
    """Distances to the nearest and second-nearest foreground instance.

    ``labels`` is a class map (H, W); instances are the 4-connected
    components of ``labels > 0``. Returns ``(d1, d2)``, float32 (H, W), in
    pixels; ``inf`` where fewer than one/two instances are within ``reach``
    (default ``ceil(4 * sigma)``). Inside an instance its own distance is 0.
    """
    if labels.ndim != 2:
        raise InputError(f"labels must be 2-D (H, W), got shape {labels.shape}")
    fg = (labels > 0).astype(np.uint8)
    _, inst = cv2.connectedComponents(fg, connectivity=4)
    return instance_distances(inst, reach, sigma)


def instance_boxes(instances: np.ndarray, grow: int = 0) -> dict[int, tuple[int, int, int, int]]:
    """Bounding box ``(y0, y1, x0, x1)`` (end exclusive) of each id > 0 of ``instances``
    (H, W), grown by ``grow`` px and clipped to the image."""
    ys, xs = np.nonzero(instances)
    if ys.size == 0:
        return {}
    ids = instances[ys, xs]
    order = np.argsort(ids, kind="stable")
    ids, ys, xs = ids[order], ys[order], xs[order]
    found, starts = np.unique(ids, return_index=True)
    h, w = instances.shape
    y0 = np.maximum(np.minimum.reduceat(ys, starts) - grow, 0)
    y1 = np.minimum(np.maximum.reduceat(ys, starts) + 1 + grow, h)
    x0 = np.maximum(np.minimum.reduceat(xs, starts) - grow, 0)
    x1 = np.minimum(np.maximum.reduceat(xs, starts) + 1 + grow, w)
    return {
        int(k): (int(a), int(b), int(c), int(d))
        for k, a, b, c, d in zip(found, y0, y1, x0, x1, strict=True)
    }


def instance_distances(
    instances: np.ndarray, reach: int | None = None, sigma: float = SIGMA
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`border_distances` of given instances: ``instances`` int (H, W) holds an id
    per object (0 background), so touching objects count as two. Ids need not be
    consecutive."""
    if instances.ndim != 2:
        raise InputError(f"instances must be 2-D (H, W), got shape {instances.shape}")
    reach = int(np.ceil(4 * sigma)) if reach is None else int(reach)
    h, w = instances.shape
    inst = instances.astype(np.int32, copy=False)
    d1 = np.full((h, w), np.inf, np.float32)
    d2 = np.full((h, w), np.inf, np.float32)
    for k, (y0, y1, x0, x1) in instance_boxes(inst, reach).items():
        # distanceTransform measures the distance to the nearest zero pixel: the instance.
        outside = (inst[y0:y1, x0:x1] != k).astype(np.uint8)
        d = cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        a, b = d1[y0:y1, x0:x1], d2[y0:y1, x0:x1]
        np.minimum(b, np.maximum(a, d), out=b)
        np.minimum(a, d, out=a)
    return d1, d2


def weight_map(
    labels: np.ndarray, classes: int = 2, w0: float = W0, sigma: float = SIGMA
) -> np.ndarray:
    """The loss weight map of one label image: float32 (H, W), see the module docstring."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(
            f"labels must be an integer class map (H, W), got {labels.dtype} {labels.shape}"
        )
    wc = class_balance(labels, classes)[labels]
    if w0 == 0:
        return wc
    d1, d2 = border_distances(labels, sigma=sigma)
    s = d1 + d2  # inf where fewer than two cells are near: the term vanishes
    border = w0 * np.exp(-(s * s) / (2 * sigma * sigma))
    border[labels > 0] = 0.0
    return (wc + border).astype(np.float32)
